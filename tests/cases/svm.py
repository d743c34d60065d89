"""Exactness cases: kernel SVMs (SVC, NuSVC, SVR, NuSVR, OneClassSVM).

Ids start with the family: ksvc, nusvc, ksvr, nusvr, ocsvm. Every kernel (linear, rbf, poly,
sigmoid) and gamma form ("scale", "auto", a number), binary and multi-class, both decision
function shapes, break_ties, class weights and Platt probabilities (probability=True).
"""

from __future__ import annotations

from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR, NuSVC, NuSVR, OneClassSVM

from ._case import Case

CASES: list[Case] = [
    Case("ksvc-rbf-iris", lambda: SVC(), "iris"),
    Case("ksvc-rbf-ovo-iris", lambda: SVC(decision_function_shape="ovo"), "iris"),
    Case("ksvc-rbf-binary", lambda: SVC(gamma="auto"), "random_clf"),
    Case("ksvc-linear-wine", lambda: SVC(kernel="linear", C=0.5), "wine"),
    Case("ksvc-poly-multi", lambda: SVC(kernel="poly", degree=3, coef0=1.0), "random_multi"),
    Case("ksvc-poly-deg2-gamma", lambda: SVC(kernel="poly", degree=2, gamma=0.05), "iris"),
    Case("ksvc-sigmoid-strlabels", lambda: SVC(kernel="sigmoid", gamma=0.01), "random_strlabels"),
    Case("ksvc-rbf-breaktie", lambda: SVC(break_ties=True, C=3.0), "random_multi"),
    Case("ksvc-rbf-classweight", lambda: SVC(class_weight="balanced"), "random_strlabels"),
    Case("ksvc-rbf-classweight-dict", lambda: SVC(class_weight={0: 3.0, 1: 0.5}), "random_clf"),
    Case("ksvc-proba-iris", lambda: SVC(probability=True, random_state=0), "iris"),
    Case("ksvc-proba-binary", lambda: SVC(probability=True, random_state=0), "breast_cancer"),
    Case(
        "ksvc-proba-multi-poly",
        lambda: SVC(kernel="poly", degree=2, probability=True, random_state=0),
        "random_multi",
    ),
    Case(
        "ksvc-proba-digits-ovo",
        lambda: SVC(probability=True, decision_function_shape="ovo", random_state=0),
        "digits",
    ),
    Case(
        "ksvc-pipe-scaled-proba",
        lambda: make_pipeline(StandardScaler(), SVC(probability=True, random_state=0)),
        "breast_cancer",
    ),
    Case("nusvc-rbf-iris", lambda: NuSVC(nu=0.3), "iris"),
    Case("nusvc-linear-binary", lambda: NuSVC(kernel="linear", nu=0.4), "random_clf"),
    Case(
        "nusvc-proba-strlabels",
        lambda: NuSVC(nu=0.3, probability=True, random_state=0),
        "random_strlabels",
    ),
    Case("ksvr-rbf-reg", lambda: SVR(C=10.0), "random_reg"),
    Case("ksvr-linear-diabetes", lambda: SVR(kernel="linear", C=100.0), "diabetes"),
    Case("ksvr-poly-auto", lambda: SVR(kernel="poly", gamma="auto", degree=2), "random_reg"),
    Case("ksvr-sigmoid", lambda: SVR(kernel="sigmoid", gamma=0.01, coef0=0.5), "random_reg"),
    Case("nusvr-rbf-reg", lambda: NuSVR(nu=0.3, C=5.0), "random_reg"),
    Case("nusvr-poly-diabetes", lambda: NuSVR(kernel="poly", degree=3), "diabetes"),
    Case("ocsvm-rbf", lambda: OneClassSVM(nu=0.1), "random_clf"),
    Case("ocsvm-linear", lambda: OneClassSVM(kernel="linear", nu=0.2), "iris"),
    Case("ocsvm-poly", lambda: OneClassSVM(kernel="poly", degree=2, gamma=0.1), "wine"),
    Case("ocsvm-sigmoid", lambda: OneClassSVM(kernel="sigmoid", gamma="auto"), "random_reg"),
]
