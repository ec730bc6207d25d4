"""Studies as files: the comparisons a researcher runs and the hypotheses they test,
declared in one ``study.toml``, checked and planned before anything trains, locked
(hashed) before any trial reads ``test``, run through the library, and reported
hypothesis by hypothesis (docs/protocol.md).

One job per module: :mod:`~cvloss.study.schema` (read the file, untrusted, into typed
entries), :mod:`~cvloss.study.check` (validate every entry; the canonical forms; the
plan), :mod:`~cvloss.study.costs` (the CPU-hour estimate), :mod:`~cvloss.study.lock`
(``FILE.lock``: hashes, changes, test reads), :mod:`~cvloss.study.hypotheses` (contrast,
p, MDE, verdict), :mod:`~cvloss.study.report` (Markdown, HTML, LaTeX, CSV) and
:mod:`~cvloss.study.run` (every comparison through the library, resumable).

The layer sits above ``run`` and ``report`` and below the CLI (``cvloss.cli_study``).
"""
