"""How cvloss's report shows the ``depth`` task: its sample-grid titles and note."""
from __future__ import annotations

from cvloss.report.views import TaskView

DEPTH_VIEW = TaskView({"input": "image", "truth": "true depth"},
                      "Depth as grey levels, near white and far black; loss columns: the predicted depth.")
