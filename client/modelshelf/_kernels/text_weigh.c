/* Text vectorizers, compiled: tf-idf weights and row norms of the counts text.c returns.
 *
 * ``weigh(data, indices, indptr, idf, norm)`` multiplies CSR data by ``idf[indices]`` and
 * scales every row to unit l1 or l2 norm, in place, with the numpy path's float operations in
 * its order (modelshelf/runtime/text.py ``TfidfTransformer``, _sparse.py ``normalize_rows``).
 * Sublinear tf (``np.log``) is left to numpy, whose log may round differently from C's. The
 * row offsets are checked (rising from 0 to the number of entries) before the loop and every
 * column against idf in it; the GIL is released around the loop, which allocates nothing. */
#include "kernels.h"

#include <math.h>

/* data[j] *= idf[indices[j]] (in float64, rounded to DT), then each row scaled to unit l1 or l2
 * norm: |x| or x * x in DT, added one by one in float64 in entry order (as the numpy path's
 * bincount), the square root for l2, a zero norm taken as 1, the quotient in float64 rounded to
 * DT: the numpy path's operations in its order. 0 on an index outside idf (``fault``). */
#define DEFINE_WEIGH(DT)                                                                      \
    static int weigh_##DT(DT *data, const npy_int64 *indices, const npy_int64 *indptr,       \
                          npy_intp n_rows, const double *idf, npy_intp n_idf, int norm,      \
                          npy_intp *fault) {                                                  \
        for (npy_intp r = 0; r < n_rows; r++) {                                               \
            npy_int64 lo = indptr[r], hi = indptr[r + 1];                                     \
            if (idf != NULL) {                                                                \
                for (npy_int64 j = lo; j < hi; j++) {                                         \
                    if ((npy_uint64)indices[j] >= (npy_uint64)n_idf) {                        \
                        *fault = (npy_intp)j;                                                 \
                        return 0;                                                             \
                    }                                                                         \
                    data[j] = (DT)((double)data[j] * idf[indices[j]]);                        \
                }                                                                             \
            }                                                                                 \
            if (norm == 0) continue;                                                          \
            double sum = 0.0;                                                                 \
            for (npy_int64 j = lo; j < hi; j++) {                                             \
                DT v = data[j];                                                               \
                DT part = norm == 1 ? (v < 0 ? -v : v) : (DT)(v * v);                         \
                sum += (double)part;                                                          \
            }                                                                                 \
            if (norm == 2) sum = sqrt(sum);                                                   \
            if (sum == 0.0) sum = 1.0;                                                        \
            for (npy_int64 j = lo; j < hi; j++) {                                             \
                data[j] = (DT)((double)data[j] / sum);                                        \
            }                                                                                 \
        }                                                                                     \
        return 1;                                                                             \
    }

DEFINE_WEIGH(double)
DEFINE_WEIGH(float)

PyObject *msk_weigh(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *data, *indices, *indptr, *idf;
    int norm;
    if (!PyArg_ParseTuple(args, "OOOOi:weigh", &data, &indices, &indptr, &idf, &norm)) {
        return NULL;
    }
    int data_type = PyArray_Check(data) ? PyArray_TYPE((PyArrayObject *)data) : NPY_FLOAT64;
    if (data_type != NPY_FLOAT32) {
        data_type = NPY_FLOAT64;
    }
    if (!msk_check_array(data, "data", data_type, 1) ||
        !msk_check_array(indices, "indices", NPY_INT64, 1) ||
        !msk_check_array(indptr, "indptr", NPY_INT64, 1) ||
        (idf != Py_None && !msk_check_array(idf, "idf", NPY_FLOAT64, 1))) {
        return NULL;
    }
    if (norm < 0 || norm > 2) {
        PyErr_SetString(PyExc_ValueError, "norm must be 0 (none), 1 (l1) or 2 (l2)");
        return NULL;
    }
    PyArrayObject *d = (PyArrayObject *)data, *p = (PyArrayObject *)indptr;
    npy_intp nnz = PyArray_DIM(d, 0), n_rows = PyArray_DIM(p, 0) - 1;
    if (!PyArray_ISWRITEABLE(d) || n_rows < 0 ||
        PyArray_DIM((PyArrayObject *)indices, 0) < nnz) {
        PyErr_SetString(PyExc_ValueError, "data must be writable, with an index per entry");
        return NULL;
    }
    const npy_int64 *ptr = PyArray_DATA(p);
    for (npy_intp r = 0; r <= n_rows; r++) { /* rising from 0 to nnz: every row in data */
        if ((r == 0 && ptr[0] != 0) || (r > 0 && ptr[r] < ptr[r - 1]) ||
            (r == n_rows && ptr[r] != nnz)) {
            PyErr_SetString(PyExc_ValueError, "indptr must rise from 0 to the number of entries");
            return NULL;
        }
    }
    const double *w = idf == Py_None ? NULL : PyArray_DATA((PyArrayObject *)idf);
    npy_intp n_idf = idf == Py_None ? 0 : PyArray_DIM((PyArrayObject *)idf, 0);
    const npy_int64 *idx = PyArray_DATA((PyArrayObject *)indices);
    npy_intp fault = 0;
    int ok;
    Py_BEGIN_ALLOW_THREADS;
    ok = data_type == NPY_FLOAT64
             ? weigh_double(PyArray_DATA(d), idx, ptr, n_rows, w, n_idf, norm, &fault)
             : weigh_float(PyArray_DATA(d), idx, ptr, n_rows, w, n_idf, norm, &fault);
    Py_END_ALLOW_THREADS;
    if (!ok) {
        PyErr_Format(PyExc_IndexError, "entry %zd has column %lld, outside idf",
                     (Py_ssize_t)fault, (long long)idx[fault]);
        return NULL;
    }
    Py_RETURN_NONE;
}
