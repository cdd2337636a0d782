"""Risk grades and repayment-propensity scores of cases.

`features` computes what is known of each case as of a day, `scorecard` is the
points table used before any model is promoted, `models` trains and explains the
learned models, `training` builds their training data, `grading` turns scores into
grades A to E, and `service` contains the calls that pages, the CLI and the worker
make.
"""

from services.scoring.service import (
    Explanation,
    ModelView,
    ScorecardInput,
    ScorecardView,
    ScoreCounts,
    current_scorecard,
    explain_case,
    get_model,
    grade_distribution,
    latest_run,
    list_models,
    nightly_job,
    promote_model,
    save_model_bands,
    save_scorecard,
    score_open_cases,
    use_scorecard,
)
from services.scoring.training import (
    FileTrainInput,
    HistoryTrainInput,
    TrainingResult,
    history_defaults,
    train_from_file,
    train_from_history,
)

__all__ = [
    "Explanation",
    "FileTrainInput",
    "HistoryTrainInput",
    "ModelView",
    "ScoreCounts",
    "ScorecardInput",
    "ScorecardView",
    "TrainingResult",
    "current_scorecard",
    "explain_case",
    "get_model",
    "grade_distribution",
    "history_defaults",
    "latest_run",
    "list_models",
    "nightly_job",
    "promote_model",
    "save_model_bands",
    "save_scorecard",
    "score_open_cases",
    "train_from_file",
    "train_from_history",
    "use_scorecard",
]
