"""Studies as files: the comparisons a researcher runs and the hypotheses they test,
declared in one ``study.toml``, checked and planned before anything trains, locked
(hashed) before any trial reads ``test``, run through the library, and reported
hypothesis by hypothesis.

One job per module:

* :mod:`cvloss.study.schema` -- read the file (bounded, untrusted) into typed entries;
  every error one line naming the file, the table and the key;
* :mod:`cvloss.study.check` -- validate every entry against tasks, losses, datasets,
  spaces and metrics; the canonical form of each entry; the plan;
* :mod:`cvloss.study.costs` -- the CPU-hour estimate from ``costs.toml``;
* :mod:`cvloss.study.lock` -- ``FILE.lock``: hashes, what changed since, test reads;
* :mod:`cvloss.study.hypotheses` -- each hypothesis's contrast, p, MDE and verdict;
* :mod:`cvloss.study.report` -- the study's Markdown, HTML, LaTeX and CSV;
* :mod:`cvloss.study.run` -- every comparison through the library, resumable.

The layer sits above ``run`` and ``report`` and below the CLI (``cvloss.cli_study``).
"""
