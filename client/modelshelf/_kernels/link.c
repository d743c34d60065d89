/* Links of boosted trees, compiled: a binary classifier's two class probabilities from its raw
 * margins, ``p = 1 / (1 + exp(-raw))`` then ``[1 - p, p]``, as modelshelf/runtime/trees.py's
 * ``_apply_link`` and ``BoostedClassifier._proba`` compute them, to the bit.
 *
 * Elementwise arithmetic is IEEE in C as in numpy; ``exp`` is not: numpy's own (SIMD) exp and
 * the C library's differ in the last bit for some inputs. The libraries whose margins these
 * are call the C library's: float64 margins are scikit-learn's (scipy's expit), LightGBM's or
 * CatBoost's (``exp``), float32 margins XGBoost's (``expf``). So does this, and so does the
 * runtime (``_math.exp_libm`` and ``expf_libm``, through ``math.exp`` and ctypes). */
#include "kernels.h"

#include <math.h>

/* The rows the link works on at once. */
#define CHUNK 256

PyObject *msk_sigmoid(PyObject *module, PyObject *args) {
    PyObject *raw_obj, *out_obj;
    if (!PyArg_ParseTuple(args, "OO:sigmoid", &raw_obj, &out_obj)) {
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
            /* XGBoost's Sigmoid: 1.0f / (1.0f + expf(-raw)), the C library's expf */
            const float *r = (const float *)PyArray_DATA(raw) + lo;
            float *o = (float *)PyArray_DATA(out) + 2 * lo;
            for (npy_intp i = 0; i < k; i++) {
                float p = 1.0f / (1.0f + expf(-r[i]));
                o[2 * i + 1] = p;
                o[2 * i] = 1.0f - p;
            }
        }
    }
    Py_RETURN_NONE;
}
