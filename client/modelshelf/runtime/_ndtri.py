"""The inverse of the standard normal CDF, as SciPy's ``special.ndtri`` computes it.

A numpy port of Cephes ``ndtri`` (Stephen L. Moshier, the rational approximations SciPy
ships): the same three ranges, coefficients and evaluation order, so results agree with
``scipy.stats.norm.ppf`` to the last bit or nearly, without importing SciPy.
"""

from __future__ import annotations

import numpy as np

_S2PI = 2.50662827463100050242e0  # sqrt(2 pi)
_EXP_M2 = 0.13533528323661269189  # exp(-2)

# |y - 0.5| <= 3/8
_P0 = (
    -5.99633501014107895267e1,
    9.80010754185999661536e1,
    -5.66762857469070293439e1,
    1.39312609387279679503e1,
    -1.23916583867381258016e0,
)
_Q0 = (
    1.95448858338141759834e0,
    4.67627912898881538453e0,
    8.63602421390890590575e1,
    -2.25462687854119370527e2,
    2.00260212380060660359e2,
    -8.20372256168333339912e1,
    1.59056225126211695515e1,
    -1.18331621121330003142e0,
)
# z = sqrt(-2 log y) in [2, 8)
_P1 = (
    4.05544892305962419923e0,
    3.15251094599893866154e1,
    5.71628192246421288162e1,
    4.40805073893200834700e1,
    1.46849561928858024014e1,
    2.18663306850790267539e0,
    -1.40256079171354495875e-1,
    -3.50424626827848203418e-2,
    -8.57456785154685413611e-4,
)
_Q1 = (
    1.57799883256466749731e1,
    4.53907635128879210584e1,
    4.13172038254672030440e1,
    1.50425385692907503408e1,
    2.50464946208309415979e0,
    -1.42182922854787788574e-1,
    -3.80806407691578277194e-2,
    -9.33259480895457427372e-4,
)
# z in [8, 64]
_P2 = (
    3.23774891776946035970e0,
    6.91522889068984211695e0,
    3.93881025292474443415e0,
    1.33303460815807542389e0,
    2.01485389549179081538e-1,
    1.23716634817820021358e-2,
    3.01581553508235416007e-4,
    2.65806974686737550832e-6,
    6.23974539184983293730e-9,
)
_Q2 = (
    6.02427039364742014255e0,
    3.67983563856160859403e0,
    1.37702099489081330271e0,
    2.16236993594496635890e-1,
    1.34204006088543189037e-2,
    3.28014464682127739104e-4,
    2.89247864745380683936e-6,
    6.79019408009981274425e-9,
)


def _polevl(x: np.ndarray, coef: tuple[float, ...]) -> np.ndarray:
    out = np.full_like(x, coef[0])
    for c in coef[1:]:
        out = out * x + c
    return out


def _p1evl(x: np.ndarray, coef: tuple[float, ...]) -> np.ndarray:
    """As ``_polevl`` with a leading coefficient of 1."""
    out = x + coef[0]
    for c in coef[1:]:
        out = out * x + c
    return out


def norm_ppf(q: np.ndarray) -> np.ndarray:
    """``scipy.stats.norm.ppf(q)``: -inf at 0, inf at 1, NaN outside [0, 1] and for NaN."""
    q = np.asarray(q, dtype=np.float64)
    out = np.full(q.shape, np.nan)
    out[q == 0.0] = -np.inf
    out[q == 1.0] = np.inf
    inside = (q > 0.0) & (q < 1.0)
    y0 = q[inside]
    upper = y0 > 1.0 - _EXP_M2
    y = np.where(upper, 1.0 - y0, y0)
    res = np.empty_like(y)
    middle = y > _EXP_M2
    w = y[middle] - 0.5
    w2 = w * w
    res[middle] = (w + w * (w2 * _polevl(w2, _P0) / _p1evl(w2, _Q0))) * _S2PI
    tail = ~middle
    x = np.sqrt(-2.0 * np.log(y[tail]))
    x0 = x - np.log(x) / x
    z = 1.0 / x
    near = x < 8.0
    x1 = np.where(
        near,
        z * _polevl(z, _P1) / _p1evl(z, _Q1),
        z * _polevl(z, _P2) / _p1evl(z, _Q2),
    )
    # the lower tail is negative; 1 - y0 mapped the upper tail onto it
    res[tail] = np.where(upper[tail], x0 - x1, -(x0 - x1))
    out[inside] = res
    return out
