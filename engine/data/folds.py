"""Cross-validation folds (``train.cv_folds``): which rows one fold's run trains and validates on.

scikit-learn makes the folds: stratified for classification (each fold keeps
the class shares), plain k-fold for regression, and group k-fold when rows
carry groups (``data.group_column`` of a table: a patient's or a session's
rows never sit on both sides). The same (y, groups, k, seed) gives the same
folds, so each fold is an ordinary run that resumes on the same rows.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold

from engine.config import ConfigError


def fold_indices(y: np.ndarray, groups: np.ndarray | None, k: int, fold: int, seed: int, *,
                 stratify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows) of fold ``fold`` (0 to k - 1) of ``k``.

    Raises ConfigError when the data cannot make k folds: fewer rows (or groups)
    than folds, or a class with fewer samples than folds (stratified folds need
    one of each class in every fold).
    """
    n = len(y)
    if groups is not None:
        distinct = len(np.unique(groups))
        if distinct < k:
            raise ConfigError(f"train.cv_folds={k} needs at least {k} groups of "
                              f"data.group_column, but the data has {distinct}: lower "
                              f"train.cv_folds")
        # GroupKFold shuffles groups (not rows) from scikit-learn 1.6 on
        splitter = GroupKFold(n_splits=k, shuffle=True, random_state=seed)
    elif stratify:
        classes, counts = np.unique(y, return_counts=True)
        if counts.min() < k:
            raise ConfigError(f"train.cv_folds={k} needs at least {k} samples of every class "
                              f"(one per fold), but class {classes[counts.argmin()]} has "
                              f"{counts.min()}: lower train.cv_folds")
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    else:
        if n < k:
            raise ConfigError(f"train.cv_folds={k} needs at least {k} samples (got {n}): "
                              f"lower train.cv_folds")
        splitter = KFold(n_splits=k, shuffle=True, random_state=seed)
    for index, (train, val) in enumerate(splitter.split(np.zeros(n), y, groups)):
        if index == fold:
            return train, val
    raise ValueError(f"fold {fold} of {k} does not exist")  # pragma: no cover
