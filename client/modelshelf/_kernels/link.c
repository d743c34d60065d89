/* Links of boosted trees, compiled: a binary classifier's two class probabilities from its raw
 * margins, ``p = 1 / (1 + exp(-raw))`` then ``[1 - p, p]``, as modelshelf/runtime/trees.py's
 * ``_apply_link`` and ``BoostedClassifier._proba`` compute them, to the bit.
 *
 * Elementwise arithmetic is IEEE in C as in numpy; ``exp`` is not: numpy's own (SIMD) exp and
 * libm's differ in the last bit for some inputs. Float64 margins are scikit-learn's (scipy's
 * expit), LightGBM's or CatBoost's, and all of them call libm's exp: so does this (and
 * ``_math.exp_libm``, through ``math.exp``). Float32 margins are XGBoost's, whose exp the
 * runtime takes as numpy's float64 exp rounded to float32: this calls numpy's float64 ``exp``
 * inner loop itself for them, found once at import among the loops of ``np.exp`` (the one
 * from double to double), over the same contiguous buffer numpy's call would give it. Without
 * that loop (another numpy), ``sigmoid_loop`` is False and the runtime computes the link in
 * numpy. */
#include "kernels.h"

#include <math.h>

static MskLoop exp_loop = NULL;
static void *exp_data = NULL;

int msk_find_exp(void) {
    /* numpy imports (this module's import did already); a missing loop leaves exp_loop NULL */
    if (!msk_float64_loop("exp", &exp_loop, &exp_data)) {
        exp_loop = NULL;
        exp_data = NULL;
    }
    return 1;
}

int msk_has_exp(void) { return exp_loop != NULL; }

/* numpy's float64 exp of ``n`` contiguous values, in place. */
static void exp_inplace(double *x, npy_intp n) {
    char *args[2] = {(char *)x, (char *)x};
    npy_intp dims[1] = {n};
    npy_intp steps[2] = {sizeof(double), sizeof(double)};
    exp_loop(args, dims, steps, exp_data);
}

/* The chunk of rows the link works on at once: its exp buffer stays on the stack. */
#define CHUNK 256

PyObject *msk_sigmoid(PyObject *module, PyObject *args) {
    PyObject *raw_obj, *out_obj;
    if (!PyArg_ParseTuple(args, "OO:sigmoid", &raw_obj, &out_obj)) {
        return NULL;
    }
    if (exp_loop == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "numpy's float64 exp loop was not found");
        return NULL;
    }
    int type_num = PyArray_Check(raw_obj) ? PyArray_TYPE((PyArrayObject *)raw_obj) : NPY_FLOAT64;
    type_num = type_num == NPY_FLOAT32 ? NPY_FLOAT32 : NPY_FLOAT64;
    if (!msk_check_array(raw_obj, "raw", type_num, 2) ||
        !msk_check_array(out_obj, "out", type_num, 2)) {
        return NULL;
    }
    PyArrayObject *raw = (PyArrayObject *)raw_obj, *out = (PyArrayObject *)out_obj;
    npy_intp n = PyArray_DIM(raw, 0);
    if (PyArray_DIM(raw, 1) != 1 || PyArray_DIM(out, 0) != n || PyArray_DIM(out, 1) != 2 ||
        !PyArray_ISWRITEABLE(out)) {
        PyErr_SetString(PyExc_ValueError, "sigmoid: raw must be (n, 1), out a writable (n, 2)");
        return NULL;
    }
    double e[CHUNK];
    for (npy_intp lo = 0; lo < n; lo += CHUNK) {
        npy_intp k = n - lo < CHUNK ? n - lo : CHUNK;
        if (type_num == NPY_FLOAT64) {
            /* 1.0 / (1.0 + exp_libm(-raw)); out[:, 0] = 1 - out[:, 1] */
            const double *r = (const double *)PyArray_DATA(raw) + lo;
            double *o = (double *)PyArray_DATA(out) + 2 * lo;
            for (npy_intp i = 0; i < k; i++) {
                double p = 1.0 / (1.0 + exp(-r[i]));
                o[2 * i + 1] = p;
                o[2 * i] = 1.0 - p;
            }
        } else {
            /* XGBoost's: one / (one + float32(np.exp(float64(-raw)))), all else in float32 */
            const float *r = (const float *)PyArray_DATA(raw) + lo;
            float *o = (float *)PyArray_DATA(out) + 2 * lo;
            for (npy_intp i = 0; i < k; i++) {
                e[i] = (double)(-r[i]);
            }
            exp_inplace(e, k);
            for (npy_intp i = 0; i < k; i++) {
                float p = 1.0f / (1.0f + (float)e[i]);
                o[2 * i + 1] = p;
                o[2 * i] = 1.0f - p;
            }
        }
    }
    Py_RETURN_NONE;
}
