"""Per-user metrics broken down by user group, with bootstrap confidence intervals.

:class:`GroupFrame` works like fairlearn's ``MetricFrame``
(https://fairlearn.org/main/api_reference/generated/fairlearn.metrics.MetricFrame.html):
one object holds the per-user values and the sensitive features, and gives
``overall``, ``by_group``, ``difference()`` and ``ratio()``. The sensitive
features are keyword-only, as in fairlearn. The recommender version differs
from fairlearn in three ways:

* the inputs are per-user metric values (e.g. NDCG@10 per user), already
  computed, not ``y_true`` / ``y_pred``, so a group's value is the mean over
  its users;
* several sensitive features are broken down **one at a time** (gender by
  itself, age band by itself), not crossed. fairlearn crosses them. Users who
  want crossed groups pass one combined column, e.g. ``"F | 25-34"``;
* every group value has a percentile bootstrap CI. Groups smaller than
  ``min_group_size`` are shown but left out of ``difference`` and ``ratio``,
  because a gap between two tiny groups is mostly noise.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

FEATURE, GROUP, METRIC = "feature", "group", "metric"
LOWER, UPPER = "lower", "upper"
_METHODS = ("between_groups", "to_overall")
_TIDY_COLUMNS = [FEATURE, GROUP, METRIC, "value", "ci_low", "ci_high", "size", "too_small"]


@dataclass(frozen=True)
class _Feature:
    """One sensitive feature, encoded: group labels in display order and a code per user."""

    name: str
    labels: pd.Index  # group labels, position = code
    codes: np.ndarray  # [n_users] int64 code per user
    sizes: np.ndarray  # [n_groups] int64


class GroupFrame:
    r"""Per-user metric values broken down by one or more user group variables.

    Modelled on fairlearn's ``MetricFrame``: ``overall``, ``by_group``,
    ``difference()`` and ``ratio()``, with sensitive features keyword-only.
    Each sensitive feature is broken down on its own (not crossed with the
    others). Every table is indexed by ``(feature, group)``, also when there is
    only one feature, so code that reads it works for any number of features.

    Confidence intervals come from a stratified percentile bootstrap. Each
    group's users are resampled with replacement within the group, so group
    sizes stay fixed. All resamples of one feature come from a single
    ``Generator.integers`` call. Each feature's random stream depends only on
    ``seed`` and the feature's name, so adding a feature does not change the
    CIs of the others.

    Args:
        values: per-user metric values. A DataFrame has one column per metric;
            a Series is one metric, named after the Series (``"value"`` if it
            has no name). Values must be finite numbers.
        sensitive_features: the group label of each user. A Series is one
            feature; a DataFrame is one feature per column. Its index must
            contain every label of ``values.index`` (extra users are ignored),
            and it must not hold missing labels: use an explicit label such as
            ``"unknown"`` (the :mod:`engine.fairness.groups` helpers do this).
            Groups follow the category order of categorical columns, otherwise
            sorted order.
        n_boot: number of bootstrap resamples (default: 1000). ``0`` turns
            bootstrapping off, and every CI is then NaN.
        ci: confidence level of the intervals (default: 0.95).
        min_group_size: groups with fewer users are marked ``too_small``. They
            are still reported but left out of ``difference``, ``ratio`` and
            ``difference_ci`` (default: 30).
        seed: seed of the bootstrap (default: 0).

    Example:
        >>> gf = GroupFrame(per_user[["ndcg@10", "recall@10"]], sensitive_features=groups[["gender"]])
        >>> gf.by_group.loc[("gender", "F"), "ndcg@10"]
        >>> gf.difference()  # max - min over the groups large enough to judge
    """

    def __init__(
        self,
        values: pd.DataFrame | pd.Series,
        *,
        sensitive_features: pd.Series | pd.DataFrame,
        n_boot: int = 1000,
        ci: float = 0.95,
        min_group_size: int = 30,
        seed: int = 0,
    ) -> None:
        if not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
            raise ValueError(f"n_boot must be a non-negative integer (got {n_boot!r})")
        if not 0.0 < float(ci) < 1.0:
            raise ValueError(f"ci must lie strictly between 0 and 1 (got {ci!r})")
        if not isinstance(min_group_size, (int, np.integer)) or min_group_size < 1:
            raise ValueError(f"min_group_size must be a positive integer (got {min_group_size!r})")
        self.n_boot = int(n_boot)
        self.ci_level = float(ci)
        self.min_group_size = int(min_group_size)
        self.seed = int(seed)

        self._values = _as_value_frame(values)
        self._matrix = self._values.to_numpy(dtype=np.float64)
        self.metrics: list[str] = [str(c) for c in self._values.columns]
        features = _as_feature_frame(sensitive_features, self._values.index)
        self._features = [_encode(name, features[name]) for name in features.columns]
        self.features: list[str] = [f.name for f in self._features]
        self._boot: dict[str, np.ndarray] = {}  # feature -> [n_boot, n_groups, n_metrics], filled lazily

    def __repr__(self) -> str:
        return (
            f"GroupFrame(metrics={self.metrics}, features={self.features}, n_users={len(self._matrix)}, "
            f"n_boot={self.n_boot}, ci={self.ci_level}, min_group_size={self.min_group_size})"
        )

    # ------------------------------------------------------------------ point estimates
    @property
    def overall(self) -> pd.Series:
        """Mean of each metric over all users (index: metric)."""
        return pd.Series(self._matrix.mean(axis=0), index=pd.Index(self.metrics, name=METRIC))

    @property
    def by_group(self) -> pd.DataFrame:
        """Mean of each metric per group: index ``(feature, group)``, one column per metric."""
        blocks = [_group_means(f, self._matrix) for f in self._features]
        return pd.DataFrame(np.vstack(blocks), index=self._group_index(), columns=self._metric_index())

    @property
    def sizes(self) -> pd.Series:
        """Number of users per group (index ``(feature, group)``)."""
        return pd.Series(np.concatenate([f.sizes for f in self._features]), index=self._group_index())

    @property
    def too_small(self) -> pd.Series:
        """True for groups with fewer than ``min_group_size`` users (left out of difference/ratio)."""
        return self.sizes < self.min_group_size

    # ------------------------------------------------------------------ disparities
    def difference(self, method: str = "between_groups") -> pd.DataFrame:
        """Largest gap per feature and metric, over the groups large enough to judge.

        Args:
            method: ``"between_groups"``: max - min of the group means;
                ``"to_overall"``: the largest absolute gap between a group mean
                and the overall mean (fairlearn's two methods)
                (default: ``"between_groups"``).

        Returns:
            DataFrame with index feature and one column per metric. The value
            is NaN where fewer than two groups are large enough
            (``"to_overall"`` needs one).
        """
        return self._disparity(method, _difference)

    def ratio(self, method: str = "between_groups") -> pd.DataFrame:
        """Smallest ratio per feature and metric, over the groups large enough to judge (1 = parity).

        Meant for non-negative metrics. NaN where the denominator is 0 or
        too few groups are large enough.

        Args:
            method: ``"between_groups"``: min / max of the group means;
                ``"to_overall"``: the smallest of ``min(g / overall, overall / g)``
                over the groups (default: ``"between_groups"``).

        Returns:
            DataFrame with index feature and one column per metric.
        """
        return self._disparity(method, _ratio)

    def _disparity(self, method: str, fn) -> pd.DataFrame:
        if method not in _METHODS:
            raise ValueError(f"unknown method {method!r}; expected one of {list(_METHODS)}")
        overall = self._matrix.mean(axis=0)
        rows = []
        for f in self._features:
            means = _group_means(f, self._matrix)[self._judged(f)]
            rows.append(fn(means, overall, method))
        return pd.DataFrame(rows, index=pd.Index(self.features, name=FEATURE), columns=self._metric_index())

    def _judged(self, feature: _Feature) -> np.ndarray:
        judged = feature.sizes >= self.min_group_size
        if not judged.all():
            small = [str(g) for g in feature.labels[~judged]]
            logger.info(
                "feature %r: groups %s have fewer than %d users; reported but left out of difference/ratio",
                feature.name,
                small,
                self.min_group_size,
            )
        return judged

    # ------------------------------------------------------------------ bootstrap
    def ci(self) -> pd.DataFrame:
        """Percentile bootstrap CI of each group mean.

        Returns:
            DataFrame with index ``(feature, group)`` and column MultiIndex
            ``(metric, "lower" | "upper")``. NaN when ``n_boot == 0``.
        """
        lo, hi = [], []
        for f in self._features:
            boot = self._replicates(f)
            if boot is None:
                low = high = np.full((len(f.labels), len(self.metrics)), np.nan)
            else:
                low, high = self._quantiles(boot)
            lo.append(low)
            hi.append(high)
        columns = pd.MultiIndex.from_product([self.metrics, [LOWER, UPPER]], names=[METRIC, "bound"])
        data = np.empty((len(self._group_index()), 2 * len(self.metrics)))
        data[:, 0::2] = np.vstack(lo)
        data[:, 1::2] = np.vstack(hi)
        return pd.DataFrame(data, index=self._group_index(), columns=columns)

    def difference_ci(self) -> pd.DataFrame:
        """Bootstrap CI of the gap between the highest and the lowest judged group.

        The two groups are the ones with the highest and lowest point
        estimates. In every resample the gap between those same two groups is
        computed. Recomputing max - min on every resample would be biased
        upwards and never cover 0. With fixed groups the interval can cover 0,
        which tells the reader the gap may be noise.

        Returns:
            Tidy DataFrame, one row per (feature, metric), with columns
            ``feature, metric, max_group, min_group, n_groups, difference,
            ci_low, ci_high``. ``n_groups`` counts the groups large enough to
            judge. Rows with fewer than two such groups have no groups and NaN
            values.
        """
        rows = []
        for f in self._features:
            judged = np.flatnonzero(self._judged(f))
            means = _group_means(f, self._matrix)
            boot = self._replicates(f)
            for m, metric in enumerate(self.metrics):
                row = {FEATURE: f.name, METRIC: metric, "max_group": None, "min_group": None}
                row.update(n_groups=len(judged), difference=np.nan, ci_low=np.nan, ci_high=np.nan)
                if len(judged) >= 2:
                    g_max = judged[np.argmax(means[judged, m])]
                    g_min = judged[np.argmin(means[judged, m])]
                    row.update(max_group=f.labels[g_max], min_group=f.labels[g_min])
                    row["difference"] = means[g_max, m] - means[g_min, m]
                    if boot is not None:
                        gaps = boot[:, g_max, m] - boot[:, g_min, m]
                        row["ci_low"], row["ci_high"] = self._quantiles(gaps)
                rows.append(row)
        return pd.DataFrame(rows)

    def to_frame(self) -> pd.DataFrame:
        """One row per (feature, group, metric), ready to plot.

        Returns:
            DataFrame with columns ``feature, group, metric, value, ci_low,
            ci_high, size, too_small``. ``group`` labels are strings.
        """
        means = self.by_group
        ci = self.ci()
        sizes = self.sizes
        small = self.too_small
        frames = []
        for metric in self.metrics:
            frames.append(
                pd.DataFrame(
                    {
                        FEATURE: means.index.get_level_values(FEATURE),
                        GROUP: [str(g) for g in means.index.get_level_values(GROUP)],
                        METRIC: metric,
                        "value": means[metric].to_numpy(),
                        "ci_low": ci[(metric, LOWER)].to_numpy(),
                        "ci_high": ci[(metric, UPPER)].to_numpy(),
                        "size": sizes.to_numpy(),
                        "too_small": small.to_numpy(),
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)[_TIDY_COLUMNS]

    def _replicates(self, feature: _Feature) -> np.ndarray | None:
        """Bootstrap means ``[n_boot, n_groups, n_metrics]`` of one feature (memoised); None if off."""
        if self.n_boot == 0:
            return None
        if feature.name not in self._boot:
            self._boot[feature.name] = _bootstrap_means(feature, self._matrix, self.n_boot, self.seed)
        return self._boot[feature.name]

    def _quantiles(self, replicates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Percentile interval along the resample axis (axis 0)."""
        alpha = (1.0 - self.ci_level) / 2.0
        low, high = np.quantile(replicates, [alpha, 1.0 - alpha], axis=0)
        return low, high

    # ------------------------------------------------------------------ indices
    def _group_index(self) -> pd.MultiIndex:
        tuples = [(f.name, g) for f in self._features for g in f.labels]
        return pd.MultiIndex.from_tuples(tuples, names=[FEATURE, GROUP])

    def _metric_index(self) -> pd.Index:
        return pd.Index(self.metrics, name=METRIC)


# ---------------------------------------------------------------------- helpers
def _as_value_frame(values: pd.DataFrame | pd.Series) -> pd.DataFrame:
    if isinstance(values, pd.Series):
        values = values.to_frame(name=values.name if values.name is not None else "value")
    if not isinstance(values, pd.DataFrame):
        raise TypeError(f"values must be a pandas DataFrame or Series (got {type(values).__name__})")
    if values.empty:
        raise ValueError(f"values is empty (got shape {values.shape})")
    if not values.index.is_unique:
        raise ValueError("values has a duplicated index; expected one row per user")
    bad = [c for c in values.columns if not pd.api.types.is_numeric_dtype(values[c])]
    if bad:
        raise ValueError(f"metric columns must be numeric (got non-numeric columns {bad!r})")
    matrix = values.to_numpy(dtype=np.float64)
    not_finite = ~np.isfinite(matrix)
    if not_finite.any():
        counts = {str(c): int(n) for c, n in zip(values.columns, not_finite.sum(axis=0), strict=True) if n}
        raise ValueError(f"metric values must be finite; NaN/inf per column: {counts!r}")
    return values


def _as_feature_frame(features: pd.Series | pd.DataFrame, index: pd.Index) -> pd.DataFrame:
    if isinstance(features, pd.Series):
        # fairlearn's name for an unnamed feature.
        name = features.name if features.name is not None else "sensitive_feature_0"
        features = features.to_frame(name=name)
    if not isinstance(features, pd.DataFrame):
        raise TypeError(f"sensitive_features must be a pandas Series or DataFrame (got {type(features).__name__})")
    if features.shape[1] == 0:
        raise ValueError("sensitive_features has no columns")
    if not features.index.is_unique:
        raise ValueError("sensitive_features has a duplicated index; expected one row per user")
    features = features.rename(columns=str)
    missing = index.difference(features.index)
    if len(missing):
        raise ValueError(
            f"sensitive_features lacks {len(missing)} user(s) present in values, e.g. {list(missing[:5])!r}"
        )
    features = features.loc[index]
    for name in features.columns:
        n_missing = int(features[name].isna().sum())
        if n_missing:
            raise ValueError(
                f"sensitive feature {name!r} has {n_missing} missing label(s); label them explicitly (e.g. 'unknown')"
            )
    return features


def _encode(name: str, column: pd.Series) -> _Feature:
    """Integer codes per user, labels ordered by category order (categoricals) or sorted value."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = column.cat.codes.to_numpy(dtype=np.int64)
        labels = pd.Index(column.cat.categories)
        # Drop categories no user has: a group of size 0 has no mean.
        used = np.unique(codes)
        remap = np.full(len(labels), -1, dtype=np.int64)
        remap[used] = np.arange(len(used))
        codes, labels = remap[codes], labels[used]
    else:
        try:
            codes, labels = pd.factorize(column, sort=True)
        except TypeError:  # mixed label types that cannot be compared: order by their text
            codes, labels = pd.factorize(column.astype(str), sort=True)
        codes = codes.astype(np.int64)
        labels = pd.Index(labels)
    sizes = np.bincount(codes, minlength=len(labels)).astype(np.int64)
    return _Feature(name=name, labels=labels, codes=codes, sizes=sizes)


def _group_means(feature: _Feature, matrix: np.ndarray) -> np.ndarray:
    """``[n_groups, n_metrics]`` means of ``matrix`` rows per group."""
    sums = np.zeros((len(feature.labels), matrix.shape[1]))
    np.add.at(sums, feature.codes, matrix)
    return sums / feature.sizes[:, None]


_BOOT_CELLS = 4_000_000  # bootstrap draws held at once (32 MB of int64); ml-100k's 1,000 x 943 fit in one chunk


def _bootstrap_means(feature: _Feature, matrix: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Stratified bootstrap group means ``[n_boot, n_groups, n_metrics]``, fully vectorised.

    Users are sorted by group so that group ``g`` occupies rows
    ``[start_g, start_g + size_g)``. One ``integers`` call with per-position
    bounds draws, for every resample and every position, a random row from
    that position's own group. Counting draws per row (one ``bincount``) and
    multiplying by a block matrix (metric columns repeated per group) gives
    all group sums of all resamples at once, without gathering
    ``n_boot x n_users x n_metrics`` values.
    """
    n_users, n_metrics = matrix.shape
    n_groups = len(feature.labels)
    order = np.argsort(feature.codes, kind="stable")
    sorted_codes = feature.codes[order]
    starts = np.concatenate([[0], np.cumsum(feature.sizes)[:-1]])
    low = starts[sorted_codes]
    high = low + feature.sizes[sorted_codes]
    # Stable per-feature stream: adding or reordering features leaves the others' CIs unchanged.
    rng = np.random.default_rng([seed, zlib.crc32(feature.name.encode())])
    block = np.zeros((n_users, n_groups * n_metrics))
    cols = sorted_codes[:, None] * n_metrics + np.arange(n_metrics)[None, :]
    block[np.arange(n_users)[:, None], cols] = matrix[order]
    sums = np.empty((n_boot, n_groups * n_metrics))
    # Resamples in chunks of at most _BOOT_CELLS draws: n_boot x n_users at once was 3 GB for 100k
    # users. Consecutive integers() calls continue one stream, so the draws are the same either way.
    step = max(1, _BOOT_CELLS // max(n_users, 1))
    for start in range(0, n_boot, step):
        n = min(step, n_boot - start)
        draws = rng.integers(low, high, size=(n, n_users))
        draws += (np.arange(n, dtype=np.int64) * n_users)[:, None]
        counts = np.bincount(draws.ravel(), minlength=n * n_users).reshape(n, n_users)
        sums[start : start + n] = counts.astype(np.float64) @ block
    return sums.reshape(n_boot, n_groups, n_metrics) / feature.sizes[None, :, None]


def _difference(means: np.ndarray, overall: np.ndarray, method: str) -> np.ndarray:
    need = 2 if method == "between_groups" else 1
    if len(means) < need:
        return np.full(len(overall), np.nan)
    if method == "between_groups":
        return means.max(axis=0) - means.min(axis=0)
    return np.abs(means - overall[None, :]).max(axis=0)


def _ratio(means: np.ndarray, overall: np.ndarray, method: str) -> np.ndarray:
    need = 2 if method == "between_groups" else 1
    if len(means) < need:
        return np.full(len(overall), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "between_groups":
            hi = means.max(axis=0)
            out = np.where(hi > 0, means.min(axis=0) / np.where(hi > 0, hi, 1.0), np.nan)
        else:
            a = means / overall[None, :]
            b = overall[None, :] / means
            out = np.minimum(a, b).min(axis=0)
            out = np.where(np.isfinite(out) & (overall > 0), out, np.nan)
    return out
