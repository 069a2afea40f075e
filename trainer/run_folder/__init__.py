"""The files of a training run's folder, as typed records: the one place their names and
keys are spelled.

  run.json          RunRecord      what the run was: classes, data, recipe, weights, versions
  state.json        TrainingState  where training stands (resumable), written every epoch,
                                   naming the checkpoint and best-weights files that go with it
  model.keras                      the final model, with the best epoch's weights
  history.json      History        per-epoch values, across restarts
  metrics.json      Metrics        evaluation results per split, and a training summary
  audit/audit.json  Audit          the dataset audit (trainer.audit writes it)

Each `read_*(folder)` returns None when the file is not there and raises RunFolderError for
one that is there but malformed; each `write_*(folder, record)` writes atomically. Readers
accept the files of earlier versions: any key a past trainer did not write is optional.
One submodule per file; import from here.
"""

from trainer.run_folder.audit import (
    AUDIT_DIR,
    AUDIT_FILE,
    AUDIT_VERSION,
    LEAK_KEYS,
    Audit,
    DuplicateGroup,
    GroupMember,
    UnreadableFile,
    audit_folder,
    read_audit,
    write_audit,
)
from trainer.run_folder.json_object import RunFolderError
from trainer.run_folder.metrics import METRICS_FILE, Metrics, read_metrics, write_metrics
from trainer.run_folder.run import RUN_FILE, RunRecord, read_run, relative_data_dir, write_run
from trainer.run_folder.training import (
    EPOCH_FILE_PATTERNS,
    HISTORY_FILE,
    MODEL_FILE,
    STATE_FILE,
    History,
    TrainingState,
    best_weights_file,
    checkpoint_file,
    read_history,
    read_state,
    write_history,
    write_state,
)

__all__ = [
    "AUDIT_DIR",
    "AUDIT_FILE",
    "AUDIT_VERSION",
    "EPOCH_FILE_PATTERNS",
    "HISTORY_FILE",
    "LEAK_KEYS",
    "METRICS_FILE",
    "MODEL_FILE",
    "RUN_FILE",
    "STATE_FILE",
    "Audit",
    "DuplicateGroup",
    "GroupMember",
    "History",
    "Metrics",
    "RunFolderError",
    "RunRecord",
    "TrainingState",
    "UnreadableFile",
    "audit_folder",
    "best_weights_file",
    "checkpoint_file",
    "read_audit",
    "read_history",
    "read_metrics",
    "read_run",
    "relative_data_dir",
    "read_state",
    "write_audit",
    "write_history",
    "write_metrics",
    "write_run",
    "write_state",
]
