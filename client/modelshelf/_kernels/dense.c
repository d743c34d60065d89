/* Dense affine maps, compiled: linear models and MLP layers (``matmul(X, W) + b``, then a link).
 *
 * The reference is the numpy runtime (modelshelf/runtime/linear.py, neural.py, _math.py), and
 * this file does not reimplement its arithmetic: it calls numpy's OWN float64 inner loops (the
 * ``functions`` of the ufuncs ``matmul``, ``add``, ``maximum``, ``exp`` and ``tanh``, the
 * CPU-dispatched implementations numpy itself selected at import) with the dimensions and
 * strides numpy's ufunc machinery passes them for the numpy path's calls, minus the Python and
 * dispatch overhead. Results are therefore the numpy path's to the last bit:
 *
 * - the product follows ``_math.matmul``'s blocks exactly (whole, row blocks, or the one-row
 *   column blocks; the cell bound and the minimum block come from Python), each block one call
 *   of numpy's matmul loop with numpy's gufunc strides (a core dimension of size 1 gets stride
 *   0, ufunc_object.c), so it takes the same gemm/gemv/dot/noblas route and BLAS keeps it on the
 *   calling thread as the numpy path's does;
 * - reductions whose order matters are numpy's: a row sum is the ``add`` loop in reduce form
 *   over the whole row from the identity 0.0 (numpy's pairwise sum);
 * - operations whose result does not depend on an order are plain C: IEEE gives their bits (the
 *   build forbids fast-math and FMA contraction): elementwise adds, subtractions and divisions
 *   (the intercept, the softmax's shift and normalisation), negation, 1 - p, x >= 0, and the
 *   maximum of a finite row (see softmax).
 *
 * numpy reports floating-point errors (overflow, invalid, division by zero) as warnings after
 * each ufunc, as ``np.errstate`` says; the kernel does not: where one is raised it answers None
 * and the numpy path recomputes, warnings included. Anything the kernel does not take (another
 * dtype, an unaligned or byte-swapped array, a subclass, no rows) is None too, never an error. The loops are looked up once,
 * on first use; where one is missing there is no dense kernel. The GIL is released around the
 * arithmetic, after every array is allocated. */
#include "kernels.h"

#include <fenv.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define NO_IMPORT_UFUNC /* only the PyUFuncObject layout: no ufunc C API calls */
#include <numpy/ufuncobject.h>

typedef MskLoop Loop;

typedef struct {
    Loop fn;
    void *data;
} UfuncLoop;

enum { U_MATMUL, U_ADD, U_MAXIMUM, U_EXP, U_TANH, N_UFUNCS };
static const char *const UFUNC_NAMES[N_UFUNCS] = {"matmul", "add", "maximum", "exp", "tanh"};
static UfuncLoop loops[N_UFUNCS];
static int loops_state; /* 0: not looked up, 1: found, -1: missing */

int msk_float64_loop(const char *name, MskLoop *fn, void **data) {
    PyObject *numpy = PyImport_ImportModule("numpy");
    if (numpy == NULL) {
        PyErr_Clear();
        return 0;
    }
    PyObject *obj = PyObject_GetAttrString(numpy, name);
    Py_DECREF(numpy);
    if (obj == NULL) {
        PyErr_Clear();
        return 0;
    }
    int found = 0;
    if (strcmp(Py_TYPE(obj)->tp_name, "numpy.ufunc") == 0) {
        /* a ufunc's legacy loop table: ``types`` holds nargs type numbers per loop */
        PyUFuncObject *ufunc = (PyUFuncObject *)obj;
        for (int i = 0; ufunc->functions != NULL && ufunc->types != NULL && i < ufunc->ntypes &&
                        !found;
             i++) {
            int all_double = 1;
            for (int j = 0; j < ufunc->nargs; j++) {
                all_double &= ufunc->types[i * ufunc->nargs + j] == NPY_DOUBLE;
            }
            if (all_double && ufunc->functions[i] != NULL) {
                *fn = (Loop)ufunc->functions[i];
                *data = ufunc->data ? ufunc->data[i] : NULL;
                found = 1;
            }
        }
    }
    Py_DECREF(obj); /* numpy keeps its ufuncs (and their loops) for the process's life */
    return found;
}

/* 1 when every loop is there (looked up once), else 0. */
static int have_loops(void) {
    if (loops_state != 0) {
        return loops_state > 0;
    }
    loops_state = -1;
    int ok = 1;
    for (int u = 0; u < N_UFUNCS; u++) {
        ok &= msk_float64_loop(UFUNC_NAMES[u], &loops[u].fn, &loops[u].data);
    }
    loops_state = ok ? 1 : -1;
    return ok;
}

PyObject *msk_dense_ready(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    return PyBool_FromLong(have_loops());
}

#define FP_ERRORS (FE_OVERFLOW | FE_INVALID | FE_DIVBYZERO)

/* -- numpy's operations, as its ufunc machinery calls the loops -------------------------- */

/* A gufunc core stride: 0 where the dimension is 1 (ufunc_object.c, "Force zero stride"). */
#define CORE(dim, stride) ((dim) == 1 ? 0 : (stride))

/* ``out (m x p) = a (m x n) @ b (n x p)``: one call of numpy's matmul loop, no outer loop. */
static void matmul(const char *a, npy_intp as0, npy_intp as1, const char *b, npy_intp bs0,
                   npy_intp bs1, char *out, npy_intp os0, npy_intp os1, npy_intp m, npy_intp n,
                   npy_intp p) {
    char *args[3] = {(char *)a, (char *)b, out};
    npy_intp dims[4] = {1, m, n, p};
    npy_intp steps[9] = {0, 0, 0, CORE(m, as0), CORE(n, as1), CORE(n, bs0),
                         CORE(p, bs1), CORE(m, os0), CORE(p, os1)};
    loops[U_MATMUL].fn(args, dims, steps, loops[U_MATMUL].data);
}

/* ``x[i] = x[i] OP y[i * y_step]``, i < n, by the binary ufunc ``u`` (y_step 0: a scalar). */
static void binary(int u, double *x, const double *y, npy_intp y_step, npy_intp n) {
    char *args[3] = {(char *)x, (char *)y, (char *)x};
    npy_intp steps[3] = {sizeof(double), y_step, sizeof(double)};
    loops[u].fn(args, &n, steps, loops[u].data);
}

/* ``x[i] = f(x[i])``, i < n, by the unary ufunc ``u`` (contiguous and in place, as numpy's
 * ``f(a, out=a)``: the loops' SIMD paths). */
static void unary(int u, double *x, npy_intp n) {
    char *args[2] = {(char *)x, (char *)x};
    npy_intp steps[2] = {sizeof(double), sizeof(double)};
    loops[u].fn(args, &n, steps, loops[u].data);
}

/* ``*acc = *acc OP x[0] OP ... x[n-1]`` by the binary ufunc ``u`` in reduce form. */
static void reduce(int u, double *acc, const double *x, npy_intp n) {
    if (n <= 0) {
        return;
    }
    char *args[3] = {(char *)acc, (char *)x, (char *)acc};
    npy_intp steps[3] = {0, sizeof(double), 0};
    loops[u].fn(args, &n, steps, loops[u].data);
}

/* _math.softmax over ``rows`` rows of ``m`` finite scores (C order), in place; 0 (nothing
 * written) where a score is not finite: numpy must serve (its maximum propagates NaN).
 *
 * The row maximum and the exact elementwise steps are plain C, the exp and the row sums numpy's
 * loops. For finite values the maximum is the same whatever the order, up to the sign of a
 * zero, and ``x - (+0)`` and ``x - (-0)`` differ at most in the sign of a zero that exp maps to
 * 1 either way. ``x - peak`` and ``x / total`` are IEEE operations: numpy's SIMD loops compute
 * the same bits (and raise the same overflow flag). C keeps the flags: numpy's ``maximum`` loop
 * clears them all when it returns (loops_minmax), so calling it per row hid an overflow in the
 * previous row's subtraction. */
static double row_max(const double *row, npy_intp m) {
    double peak = row[0];
    for (npy_intp j = 1; j < m; j++) {
        peak = row[j] > peak ? row[j] : peak;
    }
    return peak;
}

static int softmax(double *s, npy_intp rows, npy_intp m) {
    for (npy_intp i = 0; i < rows * m; i++) {
        if (!isfinite(s[i])) {
            return 0;
        }
    }
    for (npy_intp r = 0; r < rows; r++) { /* out = x - x.max(axis=1, keepdims=True) */
        double *row = s + r * m;
        double peak = row_max(row, m);
        for (npy_intp j = 0; j < m; j++) {
            row[j] = row[j] - peak;
        }
    }
    unary(U_EXP, s, rows * m); /* np.exp(out, out=out) */
    for (npy_intp r = 0; r < rows; r++) { /* out /= out.sum(axis=1, keepdims=True) */
        double *row = s + r * m;
        double total = 0.0;
        reduce(U_ADD, &total, row, m);
        for (npy_intp j = 0; j < m; j++) {
            row[j] = row[j] / total;
        }
    }
    return 1;
}


/* _math.expit, in place: scipy's expit, 1 / (1 + exp(-x)) with libm's exp (as scipy calls it;
 * numpy's SIMD exp differs in the last bit on some values). */
static void expit(double *x, npy_intp n) {
    for (npy_intp i = 0; i < n; i++) {
        x[i] = 1.0 / (1.0 + exp(-x[i]));
    }
}

/* _math.expit of ``n`` scores into (n, 2) probabilities [1 - p, p]. */
static void sigmoid2(const double *s, npy_intp n, double *out) {
    for (npy_intp i = 0; i < n; i++) {
        double p = 1.0 / (1.0 + exp(-s[i]));
        out[2 * i] = 1 - p;
        out[2 * i + 1] = p;
    }
}

/* Links: what follows the affine map (linear.py's and neural.py's, by number). */
enum {
    LINK_NONE,     /* scores as they are */
    LINK_SOFTMAX,  /* _math.softmax */
    LINK_EXPIT,    /* _math.expit */
    LINK_TANH,     /* np.tanh(a, out=a) */
    LINK_RELU,     /* np.maximum(a, 0, out=a) */
    LINK_EXP,      /* np.exp(a, out=a) */
    LINK_SIGMOID2, /* _math.expit of one score column, then np.stack([1 - p, p], axis=1) */
    N_LINKS
};

static const double ZERO = 0.0;

/* Applies ``link`` to ``rows`` x ``m`` values in place (LINK_SIGMOID2: into ``out2``); 0 where
 * numpy must serve instead (a softmax of a score that is not finite). */
static int apply_link(int link, double *s, npy_intp rows, npy_intp m, double *out2) {
    switch (link) {
    case LINK_SOFTMAX:
        return softmax(s, rows, m);
    case LINK_EXPIT:
        expit(s, rows * m);
        break;
    case LINK_TANH:
        unary(U_TANH, s, rows * m);
        break;
    case LINK_RELU:
        binary(U_MAXIMUM, s, &ZERO, 0, rows * m);
        break;
    case LINK_EXP:
        unary(U_EXP, s, rows * m);
        break;
    case LINK_SIGMOID2:
        sigmoid2(s, rows, out2);
        break;
    default:
        break;
    }
    return 1;
}

/* -- the Dense type ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyArrayObject *a_w, *a_b; /* kept alive while this object reads them */
    const char *w;
    const double *b;
    npy_intp k, n, ws0, ws1, b_step;
    int w_ndim;
    npy_intp cells, min_rows; /* _math.SINGLE_THREAD_CELLS, _math.MIN_BLOCK_ROWS */
} Dense;

/* An aligned native float64 array of 1 or 2 dims, or 0. */
static int is_double_array(PyObject *obj) {
    if (!PyArray_CheckExact(obj)) {
        return 0;
    }
    PyArrayObject *arr = (PyArrayObject *)obj;
    return PyArray_TYPE(arr) == NPY_DOUBLE && PyArray_ISALIGNED(arr) &&
           PyArray_ISNOTSWAPPED(arr);
}

static void Dense_dealloc(Dense *self) {
    Py_CLEAR(self->a_w);
    Py_CLEAR(self->a_b);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Dense_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *keywords[] = {"W", "b", "cells", "min_rows", NULL};
    PyObject *w_obj, *b_obj;
    Py_ssize_t cells, min_rows;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOnn:Dense", keywords, &w_obj, &b_obj, &cells,
                                     &min_rows)) {
        return NULL;
    }
    if (!have_loops()) {
        PyErr_SetString(PyExc_TypeError, "numpy's float64 ufunc loops were not found");
        return NULL;
    }
    if (!is_double_array(w_obj) || !is_double_array(b_obj)) {
        PyErr_SetString(PyExc_TypeError, "W and b must be aligned native float64 ndarrays");
        return NULL;
    }
    PyArrayObject *w = (PyArrayObject *)w_obj, *b = (PyArrayObject *)b_obj;
    int w_ndim = PyArray_NDIM(w);
    if (w_ndim < 1 || w_ndim > 2 || PyArray_NDIM(b) > 1 ||
        !(PyArray_IS_C_CONTIGUOUS(w) || PyArray_IS_F_CONTIGUOUS(w)) ||
        !PyArray_IS_C_CONTIGUOUS(b)) {
        PyErr_SetString(PyExc_TypeError,
                        "W must be a contiguous 1-D or 2-D array, b a contiguous 0-D or 1-D one");
        return NULL;
    }
    npy_intp k = PyArray_DIM(w, 0), n = w_ndim == 2 ? PyArray_DIM(w, 1) : 1;
    npy_intp b_size = PyArray_SIZE(b);
    if (k < 1 || n < 1 || !(b_size == n || b_size == 1) || cells < 1 || min_rows < 1 ||
        (w_ndim == 1 && PyArray_NDIM(b) == 1 && b_size != 1)) {
        PyErr_SetString(PyExc_ValueError, "W needs rows and columns, b one value or one per column");
        return NULL;
    }
    Dense *self = (Dense *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    Py_INCREF(w_obj);
    Py_INCREF(b_obj);
    self->a_w = w;
    self->a_b = b;
    self->w = PyArray_BYTES(w);
    self->b = (const double *)PyArray_DATA(b);
    self->k = k;
    self->n = n;
    self->w_ndim = w_ndim;
    self->ws0 = PyArray_STRIDE(w, 0);
    self->ws1 = w_ndim == 2 ? PyArray_STRIDE(w, 1) : 0; /* a missing core dimension */
    self->b_step = b_size == n && n > 1 ? (npy_intp)sizeof(double) : 0;
    self->cells = cells;
    self->min_rows = min_rows;
    return (PyObject *)self;
}

/* ``out (rows x n, C order) += b``: IEEE adds, numpy's bits. */
static void add_intercept(const Dense *self, double *out, npy_intp rows) {
    const npy_intp n = self->n, step = self->b_step / (npy_intp)sizeof(double);
    for (npy_intp r = 0; r < rows; r++) {
        for (npy_intp j = 0; j < n; j++) {
            out[r * n + j] = out[r * n + j] + self->b[j * step];
        }
    }
}

/* Where the row block starting at ``start`` ends, of ``block`` rows up to ``hi``: a single
 * row left goes with it (_math.block_stop). */
static npy_intp block_stop(npy_intp start, npy_intp block, npy_intp hi) {
    npy_intp stop = hi - start < block ? hi : start + block;
    return hi - stop == 1 ? hi : stop;
}

/* The row blocks of ``rows`` rows (the last takes a single row left over). */
static npy_intp count_blocks(npy_intp rows, npy_intp block) {
    return rows / block + (rows % block > 1);
}

/* ``out``'s rows ``lo`` (a multiple of ``block``) to ``hi`` = X @ W, each block of ``block``
 * rows one call of numpy's matmul loop (_math.matmul's row blocks). */
static void by_row_blocks(const Dense *self, const char *x, npy_intp xs0, npy_intp xs1,
                          npy_intp lo, npy_intp hi, npy_intp block, double *out) {
    const npy_intp n = self->n, d = sizeof(double);
    for (npy_intp start = lo, stop; start < hi; start = stop) {
        stop = block_stop(start, block, hi);
        matmul(x + start * xs0, xs0, xs1, self->w, self->ws0, self->ws1,
               (char *)(out + start * n), n * d, d, stop - start, self->k, n);
    }
}

/* The rows of each block of ``_math.matmul``'s plan for ``rows`` rows when the plan is row
 * blocks: a whole number of ``min_rows`` (_math.row_block), else 0. */
static npy_intp row_blocks(const Dense *self, npy_intp rows) {
    const npy_intp cells = self->cells / (self->k * self->n);
    return rows <= cells ? 0 : cells / self->min_rows * self->min_rows;
}

/* ``out (rows x n, C order) = X @ W + b``, in _math.matmul's blocks; X's rows and columns
 * ``xs0`` and ``xs1`` bytes apart (any strides: numpy's loop reads them as the numpy path's). */
static void affine(const Dense *self, const char *x, npy_intp xs0, npy_intp xs1, npy_intp rows,
                   double *out) {
    const npy_intp k = self->k, n = self->n, d = sizeof(double);
    const npy_intp kn = k * n; /* rows * k * n <= cells, without overflow: */
    if (rows <= self->cells / kn) {
        matmul(x, xs0, xs1, self->w, self->ws0, self->ws1, (char *)out, n * d, d, rows, k, n);
    } else if (row_blocks(self, rows) > 0) {
        by_row_blocks(self, x, xs0, xs1, 0, rows, row_blocks(self, rows), out);
    } else if (rows == 1 && self->w_ndim == 2 && self->cells / k / self->min_rows > 0) {
        /* one row: blocks of W's columns, whole ``min_rows`` of them (_math.matmul) */
        npy_intp width = self->cells / k / self->min_rows * self->min_rows;
        for (npy_intp start = 0, stop; start < n; start = stop) {
            stop = block_stop(start, width, n);
            matmul(x, xs0, xs1, self->w + start * self->ws1, self->ws0, self->ws1,
                   (char *)(out + start), n * d, d, 1, k, stop - start);
        }
    } else {
        matmul(x, xs0, xs1, self->w, self->ws0, self->ws1, (char *)out, n * d, d, rows, k, n);
    }
    add_intercept(self, out, rows);
}

/* After the product, on the thread that made it: the flags it raised (numpy warns after
 * its matmul, before the link: numpy's maximum loop, the relu, clears every flag), else the
 * link's (its overflow in libm's exp gives 0 or 1, as _math.expit's does); 1 where numpy
 * must serve the link (a softmax of scores that are not finite). */
static int linked(int link, double *s, npy_intp rows, npy_intp n, double *out2) {
    int raised = fetestexcept(FP_ERRORS);
    if (raised || link == LINK_NONE) {
        return raised;
    }
    return !apply_link(link, s, rows, n, out2) ||
           fetestexcept(link == LINK_SIGMOID2 ? FE_INVALID | FE_DIVBYZERO : FP_ERRORS);
}

/* W as numpy's matmul loop passes it to BLAS without a copy: 2-D, one stride a double, the
 * other a whole number of doubles covering the other dimension (matmul.c's is_blasable2d). */
static int blasable(const Dense *self) {
    const npy_intp d = sizeof(double), k = self->k, n = self->n;
    const npy_intp s0 = self->ws0, s1 = self->ws1;
    return self->w_ndim == 2 && ((s1 == d && s0 % d == 0 && s0 >= n * d) ||
                                 (s0 == d && s1 % d == 0 && s1 >= k * d));
}

/* One thread's share of a call: the products of the plan's row blocks from row ``lo`` (a
 * multiple of ``block``) to ``hi``, the intercept and the link of those rows, and the
 * floating-point flags this thread raised (flags are per thread) or 1 where numpy must serve. */
typedef struct {
    const Dense *self;
    const char *x;
    npy_intp xs0, xs1, lo, hi, block;
    int link;
    double *out, *out2;
    int raised;
} Part;

static void run_part(Part *p) {
    const Dense *self = p->self;
    const npy_intp n = self->n;
    feclearexcept(FE_ALL_EXCEPT);
    by_row_blocks(self, p->x, p->xs0, p->xs1, p->lo, p->hi, p->block, p->out);
    add_intercept(self, p->out + p->lo * n, p->hi - p->lo);
    double *out2 = p->out2 ? p->out2 + 2 * p->lo : NULL;
    p->raised = linked(p->link, p->out + p->lo * n, p->hi - p->lo, n, out2);
}

/* One call's row blocks as pool units (pool.c): each block one product on one thread, so the
 * bits are one thread's whoever computes it; each thread's flags ORed in. */
typedef struct {
    Part proto; /* the call (its lo and hi unused) */
    npy_intp rows;
    atomic_int raised;
} Blocks;

static void run_block(void *ctx, npy_intp unit, npy_intp slot) {
    (void)slot;
    Blocks *blocks = ctx;
    Part part = blocks->proto;
    part.lo = unit * part.block;
    part.hi = block_stop(part.lo, part.block, blocks->rows);
    run_part(&part);
    atomic_fetch_or_explicit(&blocks->raised, part.raised, memory_order_relaxed);
}

/* The call on up to ``threads`` threads (the caller's one of them). Returns the flags raised,
 * or 1 where numpy must serve. */
static int run_parts(const Part *proto, npy_intp rows, npy_intp threads) {
    Blocks blocks = {.proto = *proto, .rows = rows};
    atomic_init(&blocks.raised, 0);
    msk_pool_run(run_block, &blocks, count_blocks(rows, proto->block), threads);
    return atomic_load(&blocks.raised);
}

/* An input the kernel reads in place: an exact ndarray, float64, 2-D, aligned, native, with k
 * columns and at least one row. Its strides may be any: numpy's gufunc machinery hands such an
 * array's own strides to the matmul loop (it copies only unaligned or overlapping inputs). */
static int takes(const Dense *self, PyObject *obj) {
    if (!is_double_array(obj)) {
        return 0;
    }
    PyArrayObject *x = (PyArrayObject *)obj;
    return PyArray_NDIM(x) == 2 && PyArray_DIM(x, 1) == self->k && PyArray_DIM(x, 0) > 0;
}

/* A new C-ordered float64 array of ``ndim`` dims (rows, n). */
static PyArrayObject *new_array(int ndim, npy_intp rows, npy_intp n) {
    npy_intp dims[2] = {rows, n};
    return (PyArrayObject *)PyArray_SimpleNew(ndim, dims, NPY_DOUBLE);
}

/* The threads a call on ``x`` (taken) with ``threads`` allowed runs on: several only where the
 * plan has several row blocks and numpy's matmul loop reads X and W in place (a buffer it
 * failed to allocate would raise its MemoryError in another thread, where it is lost). */
static npy_intp threads_for(const Dense *self, PyArrayObject *x, npy_intp threads) {
    npy_intp block = row_blocks(self, PyArray_DIM(x, 0));
    if (threads <= 1 || block == 0 || !PyArray_IS_C_CONTIGUOUS(x) || !blasable(self)) {
        return 1;
    }
    npy_intp blocks = count_blocks(PyArray_DIM(x, 0), block);
    threads = threads < MSK_MAX_THREADS ? threads : MSK_MAX_THREADS;
    return threads < blocks ? threads : blocks;
}

/* _threads(X, threads): how many threads ``affine`` would run on (a test hook). */
static PyObject *Dense_threads(Dense *self, PyObject *args) {
    PyObject *obj;
    Py_ssize_t threads;
    if (!PyArg_ParseTuple(args, "On:_threads", &obj, &threads)) {
        return NULL;
    }
    if (!takes(self, obj)) {
        return PyLong_FromLong(0);
    }
    return PyLong_FromSsize_t(threads_for(self, (PyArrayObject *)obj, threads));
}

/* A call's result: None where numpy must serve (``numpy_serves``: it recomputes, with its
 * warnings or errors), else the pair of probabilities ``out2`` where the link made one, else
 * ``out``; the references not returned are dropped. */
static PyObject *answer(PyArrayObject *out, PyArrayObject *out2, int numpy_serves) {
    if (numpy_serves) {
        Py_DECREF(out);
        Py_XDECREF(out2);
        Py_RETURN_NONE;
    }
    if (out2 != NULL) {
        Py_DECREF(out);
        return (PyObject *)out2;
    }
    return (PyObject *)out;
}

static PyObject *Dense_affine(Dense *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 2 || nargs > 3 || !PyLong_Check(args[1]) || (nargs == 3 && !PyLong_Check(args[2]))) {
        PyErr_SetString(PyExc_TypeError,
                        "affine(X, link[, threads]) takes an array, a link number and a count");
        return NULL;
    }
    long link = PyLong_AsLong(args[1]);
    long threads = nargs == 3 ? PyLong_AsLong(args[2]) : 1;
    if (threads < 1) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "threads: at least 1");
        }
        return NULL;
    }
    if (link < 0 || link >= N_LINKS || (link == LINK_SIGMOID2 && self->n != 1)) {
        PyErr_SetString(PyExc_ValueError, "link: unknown, or a sigmoid of more than one score");
        return NULL;
    }
    if (!takes(self, args[0])) {
        Py_RETURN_NONE;
    }
    PyArrayObject *x = (PyArrayObject *)args[0];
    npy_intp rows = PyArray_DIM(x, 0);
    /* numpy's shape: (rows,) for a 1-D W (a missing core dimension), else (rows, n) */
    PyArrayObject *out = new_array(self->w_ndim, rows, self->n);
    PyArrayObject *out2 = NULL;
    if (out == NULL || (link == LINK_SIGMOID2 && (out2 = new_array(2, rows, 2)) == NULL)) {
        Py_XDECREF(out);
        return NULL;
    }
    const char *xd = PyArray_BYTES(x);
    npy_intp xs0 = PyArray_STRIDE(x, 0), xs1 = PyArray_STRIDE(x, 1);
    double *od = (double *)PyArray_DATA(out);
    double *o2 = out2 ? (double *)PyArray_DATA(out2) : NULL;
    int raised;
    npy_intp block = threads_for(self, x, threads) > 1 ? row_blocks(self, rows) : 0;
    Py_BEGIN_ALLOW_THREADS;
    if (block > 0) {
        Part proto = {self, xd, xs0, xs1, 0, rows, block, (int)link, od, o2, 0};
        raised = run_parts(&proto, rows, threads);
    } else {
        feclearexcept(FE_ALL_EXCEPT);
        affine(self, xd, xs0, xs1, rows, od);
        raised = linked((int)link, od, rows, self->n, o2);
    }
    Py_END_ALLOW_THREADS;
    if (PyErr_Occurred()) { /* numpy's matmul loop sets MemoryError when its buffer fails */
        Py_DECREF(out);
        Py_XDECREF(out2);
        return NULL;
    }
    return answer(out, out2, raised);
}

/* -- sparse rows: CSRMatrix @ W + b ------------------------------------------------------- */

/* Up to this many output columns CSRMatrix.__matmul__ sums each column by ``bincount`` (the
 * order below); wider products are numpy's to compute (runtime/_sparse.py, _BINCOUNT_COLUMNS). */
#define SPARSE_COLUMNS 32

/* A 1-D aligned native C-contiguous int32 or int64 ndarray's type number, else -1. */
static int index_type(PyObject *obj) {
    if (!PyArray_CheckExact(obj)) {
        return -1;
    }
    PyArrayObject *arr = (PyArrayObject *)obj;
    int type = PyArray_TYPE(arr);
    if ((type != NPY_INT32 && type != NPY_INT64) || PyArray_NDIM(arr) != 1 ||
        !PyArray_ISALIGNED(arr) || !PyArray_ISNOTSWAPPED(arr) || !PyArray_IS_C_CONTIGUOUS(arr)) {
        return -1;
    }
    return type;
}

static inline npy_int64 index_at(const void *a, int type, npy_intp i) {
    return type == NPY_INT32 ? ((const npy_int32 *)a)[i] : ((const npy_int64 *)a)[i];
}

/* ``out (rows x n) = X @ W + b`` for the CSR rows (data, indices, indptr): each output its
 * row's products ``data * W[index, j]`` added one by one in index order from 0.0 (the sums of
 * CSRMatrix.__matmul__, which are SciPy's csr_matvecs order), then the intercept. 0 where an
 * index or offset is out of range (numpy then serves, and says what is wrong). */
static int sparse_affine(const Dense *self, const double *data, const void *indices, int itype,
                         const void *indptr, int ptype, npy_intp rows, npy_intp nnz,
                         double *out) {
    const npy_intp k = self->k, n = self->n, step = self->b_step / (npy_intp)sizeof(double);
    npy_int64 start = index_at(indptr, ptype, 0);
    if (start != 0 || index_at(indptr, ptype, rows) != nnz) {
        return 0;
    }
    for (npy_intp r = 0; r < rows; r++) {
        npy_int64 stop = index_at(indptr, ptype, r + 1);
        if (stop < start || stop > nnz) {
            return 0;
        }
        for (npy_intp j = 0; j < n; j++) {
            double acc = 0.0;
            for (npy_int64 e = start; e < stop; e++) {
                npy_int64 col = index_at(indices, itype, e);
                if (col < 0 || col >= k) {
                    return 0;
                }
                acc += data[e] * *(const double *)(self->w + col * self->ws0 + j * self->ws1);
            }
            out[r * n + j] = acc + self->b[j * step];
        }
        start = stop;
    }
    return 1;
}

/* sparse(data, indices, indptr, link): affine's result for a CSR matrix of rows x k. */
static PyObject *Dense_sparse(Dense *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyLong_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "sparse(data, indices, indptr, link)");
        return NULL;
    }
    long link = PyLong_AsLong(args[3]);
    if (link < 0 || link >= N_LINKS || (link == LINK_SIGMOID2 && self->n != 1)) {
        PyErr_SetString(PyExc_ValueError, "link: unknown, or a sigmoid of more than one score");
        return NULL;
    }
    int itype = index_type(args[1]), ptype = index_type(args[2]);
    if (self->n > SPARSE_COLUMNS || itype < 0 || ptype < 0 || !is_double_array(args[0]) ||
        PyArray_NDIM((PyArrayObject *)args[0]) != 1 ||
        !PyArray_IS_C_CONTIGUOUS((PyArrayObject *)args[0])) {
        Py_RETURN_NONE;
    }
    PyArrayObject *data = (PyArrayObject *)args[0], *indices = (PyArrayObject *)args[1];
    PyArrayObject *indptr = (PyArrayObject *)args[2];
    npy_intp nnz = PyArray_DIM(data, 0), rows = PyArray_DIM(indptr, 0) - 1;
    if (rows < 1 || PyArray_DIM(indices, 0) != nnz) {
        Py_RETURN_NONE;
    }
    PyArrayObject *out = new_array(self->w_ndim, rows, self->n);
    PyArrayObject *out2 = NULL;
    if (out == NULL || (link == LINK_SIGMOID2 && (out2 = new_array(2, rows, 2)) == NULL)) {
        Py_XDECREF(out);
        return NULL;
    }
    double *od = (double *)PyArray_DATA(out);
    double *o2 = out2 ? (double *)PyArray_DATA(out2) : NULL;
    int ok, raised = 0;
    Py_BEGIN_ALLOW_THREADS;
    feclearexcept(FE_ALL_EXCEPT);
    ok = sparse_affine(self, (const double *)PyArray_DATA(data), PyArray_DATA(indices), itype,
                       PyArray_DATA(indptr), ptype, rows, nnz, od);
    if (ok) {
        raised = linked((int)link, od, rows, self->n, o2);
    }
    Py_END_ALLOW_THREADS;
    return answer(out, out2, !ok || raised); /* numpy's errors and warnings are its own */
}

static PyMethodDef Dense_methods[] = {
    {"_threads", (PyCFunction)Dense_threads, METH_VARARGS,
     "_threads(X, threads) -> the threads affine(X, link, threads) runs on (0: not taken)."},
    {"affine", (PyCFunction)(void (*)(void))Dense_affine, METH_FASTCALL,
     "affine(X, link[, threads]) -> X @ W + b through the link (a number, see dense.c), its "
     "row blocks split over up to ``threads`` threads, or None where the numpy path must serve "
     "(an input it does not take, a floating-point error)."},
    {"sparse", (PyCFunction)(void (*)(void))Dense_sparse, METH_FASTCALL,
     "sparse(data, indices, indptr, link) -> affine's result for the CSR rows (data, indices, "
     "indptr), each row's products summed in index order as CSRMatrix @ W does; None where "
     "the numpy path must serve (more than 32 columns, an array it does not take, an index "
     "out of range, a floating-point error)."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject msk_DenseType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "modelshelf._kernels._native.Dense",
    .tp_basicsize = sizeof(Dense),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Dense(W, b, cells, min_rows): an affine map X @ W + b over float64 image arrays, "
              "computed by numpy's own loops in _math.matmul's blocks.",
    .tp_new = Dense_new,
    .tp_dealloc = (destructor)Dense_dealloc,
    .tp_methods = Dense_methods,
};

/* dense_rows(X, op): the row reductions the softmax uses (op 0: sums, op 1: maxima) of a
 * C-ordered float64 matrix, exposed so that tests hold them against numpy's (the maxima of
 * finite rows; softmax leaves any other row to numpy). */
PyObject *msk_dense_rows(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *obj;
    int op;
    if (!PyArg_ParseTuple(args, "Oi:dense_rows", &obj, &op)) {
        return NULL;
    }
    if (!have_loops() || !msk_check_array(obj, "X", NPY_DOUBLE, 2) || (op != 0 && op != 1)) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "dense_rows: op is 0 (sums) or 1 (maxima)");
        }
        return NULL;
    }
    PyArrayObject *x = (PyArrayObject *)obj;
    npy_intp rows = PyArray_DIM(x, 0), m = PyArray_DIM(x, 1);
    if (m < 1) {
        PyErr_SetString(PyExc_ValueError, "dense_rows: X needs columns");
        return NULL;
    }
    PyArrayObject *out = new_array(1, rows, 1);
    if (out == NULL) {
        return NULL;
    }
    const double *xd = (const double *)PyArray_DATA(x);
    double *od = (double *)PyArray_DATA(out);
    for (npy_intp r = 0; r < rows; r++) {
        const double *row = xd + r * m;
        if (op == 0) {
            od[r] = 0.0;
            reduce(U_ADD, od + r, row, m);
        } else {
            od[r] = row_max(row, m);
        }
    }
    return (PyObject *)out;
}

/* forward(layers, X, hidden, output): an MLP's forward pass (neural._forward and the output
 * activation) through a tuple of Dense layers that chain; None where numpy must serve. */
PyObject *msk_dense_forward(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    enum { MAX_LAYERS = 1024 };
    if (nargs < 4 || nargs > 5 || !PyTuple_Check(args[0]) || !PyLong_Check(args[2]) ||
        !PyLong_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "forward(layers, X, hidden, output[, pair])");
        return NULL;
    }
    int pair = nargs == 5 ? PyObject_IsTrue(args[4]) : 0;
    if (pair < 0) {
        return NULL;
    }
    Py_ssize_t n_layers = PyTuple_GET_SIZE(args[0]);
    long hidden = PyLong_AsLong(args[2]), output = PyLong_AsLong(args[3]);
    if (n_layers < 1 || n_layers > MAX_LAYERS || hidden < 0 || hidden >= LINK_SIGMOID2 ||
        output < 0 || output >= LINK_SIGMOID2) {
        PyErr_SetString(PyExc_ValueError, "forward: 1..1024 layers and links below SIGMOID2");
        return NULL;
    }
    const Dense *layers[MAX_LAYERS];
    for (Py_ssize_t i = 0; i < n_layers; i++) {
        PyObject *layer = PyTuple_GET_ITEM(args[0], i);
        if (!PyObject_TypeCheck(layer, &msk_DenseType)) {
            PyErr_SetString(PyExc_TypeError, "forward: layers must be Dense");
            return NULL;
        }
        layers[i] = (const Dense *)layer;
        if (layers[i]->w_ndim != 2 || (i > 0 && layers[i]->k != layers[i - 1]->n)) {
            PyErr_SetString(PyExc_ValueError, "forward: 2-D layers whose widths chain");
            return NULL;
        }
    }
    if (pair && layers[n_layers - 1]->n != 1) {
        PyErr_SetString(PyExc_ValueError, "forward: a pair of probabilities needs one output");
        return NULL;
    }
    if (!takes(layers[0], args[1])) {
        Py_RETURN_NONE;
    }
    npy_intp rows = PyArray_DIM((PyArrayObject *)args[1], 0);
    /* every activation, allocated before the GIL goes: numpy makes one per layer too */
    PyArrayObject *acts[MAX_LAYERS];
    for (Py_ssize_t i = 0; i < n_layers; i++) {
        acts[i] = new_array(2, rows, layers[i]->n);
        if (acts[i] == NULL) {
            for (Py_ssize_t j = 0; j < i; j++) {
                Py_DECREF(acts[j]);
            }
            return NULL;
        }
    }
    PyArrayObject *x = (PyArrayObject *)args[1];
    const char *in = PyArray_BYTES(x);
    npy_intp xs0 = PyArray_STRIDE(x, 0), xs1 = PyArray_STRIDE(x, 1);
    int raised = 0;
    Py_BEGIN_ALLOW_THREADS;
    feclearexcept(FE_ALL_EXCEPT);
    for (Py_ssize_t i = 0; i < n_layers && !raised; i++) {
        double *out = (double *)PyArray_DATA(acts[i]);
        affine(layers[i], in, xs0, xs1, rows, out);
        raised = linked(i + 1 < n_layers ? (int)hidden : (int)output, out, rows, layers[i]->n,
                        NULL);
        in = (const char *)out; /* the next layer reads this C-ordered activation */
        xs0 = layers[i]->n * (npy_intp)sizeof(double);
        xs1 = sizeof(double);
    }
    Py_END_ALLOW_THREADS;
    for (Py_ssize_t i = 0; i + 1 < n_layers; i++) {
        Py_DECREF(acts[i]);
    }
    PyArrayObject *last = acts[n_layers - 1];
    if (PyErr_Occurred()) {
        Py_DECREF(last);
        return NULL;
    }
    if (raised) {
        Py_DECREF(last);
        Py_RETURN_NONE;
    }
    if (pair) { /* a binary classifier's [1 - p, p] (neural.py: np.vstack([1 - p, p]).T) */
        PyArrayObject *both = new_array(2, rows, 2);
        if (both != NULL) {
            const double *p = (const double *)PyArray_DATA(last);
            double *o = (double *)PyArray_DATA(both);
            for (npy_intp i = 0; i < rows; i++) {
                o[2 * i] = 1 - p[i];
                o[2 * i + 1] = p[i];
            }
        }
        Py_DECREF(last);
        return (PyObject *)both;
    }
    return (PyObject *)last;
}
