/* Input checks, compiled: the common case of a prediction's input validation in one C call.
 *
 * ``float_input(X, n_features, allow_nan[, within_float32])`` answers for an exact
 * ``numpy.ndarray`` that is 2-D,
 * native float64, aligned and contiguous (C or Fortran order), with at least one row,
 * ``n_features`` columns (-1: any) and only finite values (``allow_nan``: no infinity, NaN
 * allowed; ``within_float32``: no finite value that float32 rounds to infinity): it returns
 * what modelshelf/runtime/_input.py ``as_float_matrix`` would, a
 * read-only view of X (X itself when X is read-only already). For anything else it returns
 * None, never an error: the Python checks then run, and they alone raise, so every refusal
 * keeps its message. ``all_finite(arr, allow_nan)`` is ``check_finite``'s common case: True
 * when a contiguous float64 or float32 array holds no infinity (and no NaN unless allowed),
 * False for "let the Python code count and decide".
 *
 * The scans read the exponent bits as integers (no float operation, so no flag or rounding
 * question) in loops that allocate nothing and vectorise; the GIL is released around large
 * ones. */
#include "kernels.h"

#include <stdint.h>
#include <string.h>

/* Above this many cells a scan releases the GIL (below, the release costs more than the scan). */
#define MSK_INPUT_NOGIL_CELLS (1 << 16)

/* Wider vectors where the CPU has them (chosen once at load by glibc's ifunc resolver); the scans
 * are integer-only, so every clone gives the same answer. */
#if defined(__x86_64__) && defined(__GLIBC__) && (defined(__clang__) || defined(__GNUC__))
#define MSK_SCAN_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define MSK_SCAN_CLONES
#endif

#define MSK_SCAN_LANES 8 /* independent accumulators: the ORs need not wait for each other */

/* 1 if every value is finite (``allow_nan``: not infinite), else 0, by integer operations on
 * the bits that leave the top bit of ``bad`` set for a value that fails and clear otherwise
 * (branch-free, so that the loops vectorise): a value is NaN or infinite when its exponent
 * bits are all ones, and then adding one at the exponent's lowest bit carries into the sign
 * bit; it is infinite when its bits but the sign equal INF_BITS, and then 0 - 1 wraps to the
 * top bit, while any other difference (below the top bit) minus 1 stays below it. */
#define DEFINE_SCAN(NAME, UT, EXP_MASK, EXP_ONE, ABS_MASK, INF_BITS)                           \
    static inline UT NAME##_fails(UT b, int allow_nan) {                                    \
        return allow_nan ? ((b & (ABS_MASK)) ^ (INF_BITS)) - 1 : (b & (EXP_MASK)) + (EXP_ONE); \
    }                                                                                       \
    MSK_SCAN_CLONES static int NAME(const char *data, npy_intp n, int allow_nan) {          \
        UT lanes[MSK_SCAN_LANES] = {0}, bad = 0, b;                                         \
        npy_intp i = 0;                                                                     \
        for (; i + MSK_SCAN_LANES <= n; i += MSK_SCAN_LANES) {                              \
            for (int k = 0; k < MSK_SCAN_LANES; k++) {                                      \
                memcpy(&b, data + (i + k) * (npy_intp)sizeof(UT), sizeof(UT));              \
                lanes[k] |= NAME##_fails(b, allow_nan);                                     \
            }                                                                               \
        }                                                                                   \
        for (; i < n; i++) {                                                                \
            memcpy(&b, data + i * (npy_intp)sizeof(UT), sizeof(UT));                        \
            bad |= NAME##_fails(b, allow_nan);                                              \
        }                                                                                   \
        for (int k = 0; k < MSK_SCAN_LANES; k++) {                                          \
            bad |= lanes[k];                                                                \
        }                                                                                   \
        return (bad >> (sizeof(UT) * 8 - 1)) == 0;                                          \
    }

DEFINE_SCAN(scan_f64, uint64_t, 0x7ff0000000000000ull, 0x0010000000000000ull,
            0x7fffffffffffffffull, 0x7ff0000000000000ull)
DEFINE_SCAN(scan_f32, uint32_t, 0x7f800000u, 0x00800000u, 0x7fffffffu, 0x7f800000u)

/* 1 if no finite float64 value's magnitude rounds to infinity in float32 (|v| >= 2**128 -
 * 2**103; scikit-learn's trees cast X to float32 and then refuse infinity there), by an integer
 * compare of the bits without the sign (ordered as the magnitudes are). NaN and infinity pass:
 * the finiteness scan decides on them. */
#define MSK_F32_ROUNDS_TO_INF 0x47effffff0000000ull
MSK_SCAN_CLONES static int scan_f32_range(const char *data, npy_intp n) {
    uint64_t bad = 0, b;
    for (npy_intp i = 0; i < n; i++) {
        memcpy(&b, data + i * (npy_intp)sizeof(uint64_t), sizeof(uint64_t));
        b &= 0x7fffffffffffffffull;
        bad |= (uint64_t)(b >= MSK_F32_ROUNDS_TO_INF) & (uint64_t)(b < 0x7ff0000000000000ull);
    }
    return bad == 0;
}

/* ``scan`` over ``n`` cells of ``data``, without the GIL when the array is large. */
static int scan(int type_num, const char *data, npy_intp n, int allow_nan) {
    int ok;
    if (n < MSK_INPUT_NOGIL_CELLS) {
        return type_num == NPY_FLOAT64 ? scan_f64(data, n, allow_nan) : scan_f32(data, n, allow_nan);
    }
    Py_BEGIN_ALLOW_THREADS;
    ok = type_num == NPY_FLOAT64 ? scan_f64(data, n, allow_nan) : scan_f32(data, n, allow_nan);
    Py_END_ALLOW_THREADS;
    return ok;
}

/* Whether ``arr`` is one aligned native-order block (C or Fortran order) that ``scan`` reads. */
static int scannable(PyArrayObject *arr, int type_num) {
    return PyArray_TYPE(arr) == type_num && PyArray_ISNOTSWAPPED(arr) && PyArray_ISALIGNED(arr) &&
           (PyArray_IS_C_CONTIGUOUS(arr) || PyArray_IS_F_CONTIGUOUS(arr));
}

PyObject *msk_float_input(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 3 && nargs != 4) {
        PyErr_Format(PyExc_TypeError,
                     "float_input(X, n_features, allow_nan[, within_float32]) takes 3 or 4 "
                     "arguments, got %zd", nargs);
        return NULL;
    }
    int within_float32 = nargs == 4 ? PyObject_IsTrue(args[3]) : 0;
    if (within_float32 < 0) {
        return NULL;
    }
    Py_ssize_t n_features = PyLong_AsSsize_t(args[1]);
    if (n_features == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) {
            return NULL;
        }
        PyErr_Clear(); /* a width no array has (a hostile manifest's): the Python checks say so */
        Py_RETURN_NONE;
    }
    int allow_nan = PyObject_IsTrue(args[2]);
    if (allow_nan < 0) {
        return NULL;
    }
    if (Py_TYPE(args[0]) != &PyArray_Type) { /* subclasses, lists, frames: the Python path */
        Py_RETURN_NONE;
    }
    PyArrayObject *arr = (PyArrayObject *)args[0];
    if (PyArray_NDIM(arr) != 2 || !scannable(arr, NPY_FLOAT64)) {
        Py_RETURN_NONE;
    }
    npy_intp rows = PyArray_DIM(arr, 0), cols = PyArray_DIM(arr, 1);
    if (rows < 1 || (n_features >= 0 && cols != n_features)) {
        Py_RETURN_NONE;
    }
    if (!scan(NPY_FLOAT64, PyArray_BYTES(arr), rows * cols, allow_nan)) {
        Py_RETURN_NONE;
    }
    if (within_float32 && !scan_f32_range(PyArray_BYTES(arr), rows * cols)) {
        Py_RETURN_NONE; /* the Python checks word the refusal */
    }
    if (!PyArray_ISWRITEABLE(arr)) {
        Py_INCREF(arr);
        return (PyObject *)arr;
    }
    PyObject *view = PyArray_View(arr, NULL, NULL);
    if (view != NULL) {
        PyArray_CLEARFLAGS((PyArrayObject *)view, NPY_ARRAY_WRITEABLE);
    }
    return view;
}

PyObject *msk_all_finite(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "all_finite(arr, allow_nan) takes 2 arguments, got %zd",
                     nargs);
        return NULL;
    }
    int allow_nan = PyObject_IsTrue(args[1]);
    if (allow_nan < 0) {
        return NULL;
    }
    if (!PyArray_Check(args[0])) {
        Py_RETURN_FALSE;
    }
    PyArrayObject *arr = (PyArrayObject *)args[0];
    int type_num = PyArray_TYPE(arr);
    if ((type_num != NPY_FLOAT64 && type_num != NPY_FLOAT32) || !scannable(arr, type_num)) {
        Py_RETURN_FALSE;
    }
    if (!scan(type_num, PyArray_BYTES(arr), PyArray_SIZE(arr), allow_nan)) {
        Py_RETURN_FALSE;
    }
    Py_RETURN_TRUE;
}
