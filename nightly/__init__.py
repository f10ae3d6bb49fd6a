"""The nightly recommendation job (``rec-nightly``) over the three stages' library code.

Public API::

    from movierec.nightly import NightlyConfig, run_nightly
    from movierec.train.config import TrainConfig

    result = run_nightly(NightlyConfig(data=Path("ratings/"), home=Path("/srv/recs"),
                                       train=TrainConfig.for_arch("hybrid")))
    print(result.version, result.summary)  # one line; result.report is DIR/runs/VERSION.json

Each stage stays usable on its own (``rec-train``, ``rec-export``, ``rec-score``); this
package only composes them, with a lock, a data gate, a quality gate and atomic
publishing. ``rec-nightly status``, ``rollback`` and ``report`` read and switch the home
folder a run leaves (``_status``, ``_rollback``, ``_report``).
"""

from movierec.nightly.config import NightlyConfig
from movierec.nightly.pipeline import NightlyResult, run_nightly

__all__ = ["NightlyConfig", "NightlyResult", "run_nightly"]
