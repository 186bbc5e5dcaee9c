"""A local Ray's worker processes, set up without a warning that is always false there.

The trainer's local Ray starts without the dashboard (`include_dashboard=False`: it would
listen on a port and cost a process for nothing the embedded mode shows). Ray Train V2's
`PlacementGroupCleaner` actor asks the state API, which the dashboard serves, whether the
train controller is alive, once a second; without a dashboard every ask fails and it logs
"Failed to query Ray Train Controller actor state. State API may be temporarily
unavailable. Continuing to monitor." at WARNING, about once a second of training, into the
job's log. It is never temporary here, and the cleaner's job (removing the placement group
of a controller that died) is moot: the local Ray stops with the trainer's process.

`quiet_worker_process()` is the local Ray's `worker_process_setup_hook`: it raises only that
module's logger to ERROR in each worker process. A Ray joined by address (a cluster, with
its dashboard) is left as it is.
"""

from __future__ import annotations

import logging

PLACEMENT_GROUP_CLEANER_LOGGER = (
    "ray.train.v2._internal.execution.controller.placement_group_cleaner"
)
SETUP_HOOK = "tuneforge_trainer.ray_quiet.quiet_worker_process"
"""The hook's import path, as `runtime_env["worker_process_setup_hook"]` takes it."""


def quiet_worker_process() -> None:
    """Keep the cleaner's dashboard-less state-API warnings out of the job's log."""
    logging.getLogger(PLACEMENT_GROUP_CLEANER_LOGGER).setLevel(logging.ERROR)
