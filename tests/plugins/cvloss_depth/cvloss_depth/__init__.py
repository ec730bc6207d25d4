"""cvloss_depth: a toy depth-regression task for cvloss, from outside its package.

Installed (here: its folder on ``sys.path``), its ``*.dist-info/entry_points.txt`` adds
the task ``depth`` (:mod:`cvloss_depth.task`), the embedded dataset ``depth-synth``
(:mod:`cvloss_depth.data`) and the report's view of the task (:mod:`cvloss_depth.view`).
No file of cvloss names any of them.
"""
