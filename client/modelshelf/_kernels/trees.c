/* Tree ensembles, compiled: the sums of leaf outputs over a forest's flat node arrays.
 *
 * The reference is the numpy runtime (modelshelf/runtime/trees_forest.py, trees_walk.py) and
 * the layout is docs/format.md, "Tree ensembles". ``Trees`` keeps the node arrays of one
 * forest, their dtypes and shapes checked once when it is made (O(number of arrays), as every
 * load); ``Trees.sum(W, out)`` walks every (tree, row) pair of a working matrix ``W`` (which
 * the runtime prepares: inputs cast, categories encoded, the sentinel column) and writes the
 * per-group sums, base first, into ``out``. Results are the numpy path's to the last bit:
 *
 * - a step compares in the promoted type, as numpy does (``x > t``; a NaN ``x`` takes the
 *   node's missing bit); a walk ends at a leaf (its own child) or after ``depth`` steps;
 * - each output is the base (or the first tree's value) plus every other tree's value in
 *   ``roots`` order, sequential additions in the output dtype, as ``np.add.reduce`` over the
 *   tree axis does.
 *
 * ``Trees.raw(X, out, divisor, threads)`` does the same from the inputs themselves, for forests
 * whose working matrix is the inputs cast plus the sentinel column: rows are cast per block
 * (numpy's astype rounding) into a buffer, walked, and the sums divided (random forests).
 * Either call may split its rows over threads (``run_batch``, on pool.c's kept workers): each
 * row is summed by one thread in tree order, so results do not depend on the number of threads.
 *
 * Every index read from the arrays (roots, features, children, leaf rows) is checked in the
 * loop before use; a bad one stops the kernel with IndexError, which the runtime reports as
 * ManifestError (a thread's, once every chunk is done). Nothing is allocated while walking, and the GIL
 * is released around it, except for a few rows: there the walk takes microseconds, and
 * retaking the GIL from another thread could cost the caller more than the walk. */
#include "kernels.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    PyObject_HEAD
    /* the arrays, kept alive while this object reads them (NULL where absent) */
    PyArrayObject *a_feature, *a_threshold, *a_child, *a_missing, *a_roots, *a_leaf_values,
        *a_base;
    const npy_int32 *feature, *child, *roots;
    const char *threshold;   /* float32 or float64: split thresholds, leaf payloads */
    const npy_uint8 *missing; /* NULL: NaN goes to the first child */
    npy_intp *groups;         /* n_groups + 1 offsets into roots (owned: PyMem) */
    const char *leaf_values;  /* NULL: a leaf's payload is its output */
    const char *base;         /* NULL: a sum starts from its first tree */
    int threshold_type, out_type;
    int input_type, work_type; /* ``raw``: inputs cast to input_type, then to work_type */
    npy_intp n_nodes, n_trees, n_groups, width, n_rows, depth;
    npy_intp n_features;       /* ``raw``: the inputs' columns (-1: ``sum`` only) */
    int trust; /* ``raw``: 0 not known yet, 1 every index in range (all_in_range), -1 not */
    int calls; /* ``raw``: calls of a few rows before ``trust`` was known */
} Trees;

enum { FAULT_ROOT = 1, FAULT_FEATURE, FAULT_CHILD, FAULT_PAYLOAD };

typedef struct {
    int code;
    npy_intp node;   /* where it was read */
    long long index; /* what was read: a node or column index */
    double payload;  /* or a leaf row, as stored */
} Fault;

#include "trees_walk.h"

/* -- the Python type ------------------------------------------------------------------------ */

static int is_float_type(int type_num) { return type_num == NPY_FLOAT64 || type_num == NPY_FLOAT32; }

/* ``obj`` as a kept reference in ``*slot`` if it is an array of one of ``types`` (0-terminated). */
static int take_array(PyObject *obj, const char *role, const int *types, int ndim,
                      PyArrayObject **slot) {
    int type_num = PyArray_Check(obj) ? PyArray_TYPE((PyArrayObject *)obj) : types[0];
    int wanted = types[0];
    for (const int *t = types; *t; t++) {
        if (*t == type_num) {
            wanted = type_num;
        }
    }
    if (!msk_check_array(obj, role, wanted, ndim)) {
        return 0;
    }
    Py_INCREF(obj);
    *slot = (PyArrayObject *)obj;
    return 1;
}

static const int INT32[] = {NPY_INT32, 0};
static const int UINT8[] = {NPY_UINT8, 0};
static const int FLOATS[] = {NPY_FLOAT64, NPY_FLOAT32, 0};

static int Trees_clear(Trees *self) {
    Py_CLEAR(self->a_feature);
    Py_CLEAR(self->a_threshold);
    Py_CLEAR(self->a_child);
    Py_CLEAR(self->a_missing);
    Py_CLEAR(self->a_roots);
    PyMem_Free(self->groups);
    self->groups = NULL;
    Py_CLEAR(self->a_leaf_values);
    Py_CLEAR(self->a_base);
    return 0;
}

static void Trees_dealloc(Trees *self) {
    Trees_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int fail(const char *message) {
    PyErr_SetString(PyExc_ValueError, message);
    return 0;
}

/* ``groups`` (a list or tuple of ints: the offsets of each output group's trees, as the
 * manifest gives them, no numpy array built for them at load) copied into ``self->groups``. */
static int take_groups(Trees *self, PyObject *groups) {
    PyObject *seq = PySequence_Fast(groups, "groups: expected a list of offsets");
    if (seq == NULL) {
        return 0;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    self->groups = n > 0 ? PyMem_New(npy_intp, n) : NULL;
    if (n > 0 && self->groups == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return 0;
    }
    self->n_groups = n - 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        Py_ssize_t v = PyLong_Check(item) ? PyLong_AsSsize_t(item) : -1;
        if (v == -1 && !PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "groups: expected offsets from 0");
        }
        if (PyErr_Occurred()) {
            Py_DECREF(seq);
            return 0;
        }
        self->groups[i] = (npy_intp)v;
    }
    Py_DECREF(seq);
    return 1;
}

/* Shapes against each other, as trees_forest.Forest checks them: what the loops rely on. */
static int check_shapes(Trees *self) {
    self->n_nodes = PyArray_DIM(self->a_feature, 0);
    self->n_trees = PyArray_DIM(self->a_roots, 0);
    if (self->n_nodes < 1 || self->n_trees < 1) {
        return fail("a forest needs at least one node and one tree");
    }
    if (PyArray_DIM(self->a_threshold, 0) != self->n_nodes ||
        PyArray_DIM(self->a_child, 0) != self->n_nodes) {
        return fail("feature, threshold and child must hold one value per node");
    }
    if (self->a_missing && PyArray_DIM(self->a_missing, 0) != (self->n_nodes + 7) / 8) {
        return fail("missing must pack one bit per node");
    }
    if (self->n_groups < 1) {
        return fail("groups needs at least two offsets");
    }
    if (self->groups[0] != 0 || self->groups[self->n_groups] != self->n_trees) {
        return fail("groups must run from 0 to the number of trees");
    }
    for (npy_intp g = 0; g < self->n_groups; g++) {
        if (self->groups[g] > self->groups[g + 1]) {
            return fail("groups must not decrease");
        }
    }
    self->width = 1;
    self->n_rows = 0;
    self->threshold_type = PyArray_TYPE(self->a_threshold);
    self->out_type = self->threshold_type;
    if (self->a_leaf_values) {
        self->n_rows = PyArray_DIM(self->a_leaf_values, 0);
        self->width = PyArray_DIM(self->a_leaf_values, 1);
        self->out_type = PyArray_TYPE(self->a_leaf_values);
        if (self->width < 1) {
            return fail("leaf_values needs at least one column");
        }
    }
    if (self->a_base && (PyArray_TYPE(self->a_base) != self->out_type ||
                         PyArray_DIM(self->a_base, 0) != self->n_groups * self->width)) {
        return fail("base must hold one value per output, in the outputs' dtype");
    }
    return 1;
}

static PyObject *Trees_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *keywords[] = {"feature", "threshold", "child", "missing", "roots",
                               "groups",  "leaf_values", "base", "depth", "n_features",
                               "input32", NULL};
    PyObject *feature, *threshold, *child, *missing, *roots, *groups, *leaf_values, *base;
    Py_ssize_t depth, n_features = -1;
    int input32 = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOOOOn|$np:Trees", keywords, &feature,
                                     &threshold, &child, &missing, &roots, &groups,
                                     &leaf_values, &base, &depth, &n_features, &input32)) {
        return NULL;
    }
    Trees *self = (Trees *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    if (!take_array(feature, "feature", INT32, 1, &self->a_feature) ||
        !take_array(threshold, "threshold", FLOATS, 1, &self->a_threshold) ||
        !take_array(child, "child", INT32, 1, &self->a_child) ||
        (missing != Py_None && !take_array(missing, "missing", UINT8, 1, &self->a_missing)) ||
        !take_array(roots, "roots", INT32, 1, &self->a_roots) ||
        !take_groups(self, groups) ||
        (leaf_values != Py_None &&
         !take_array(leaf_values, "leaf_values", FLOATS, 2, &self->a_leaf_values)) ||
        (base != Py_None && !take_array(base, "base", FLOATS, 1, &self->a_base)) ||
        !check_shapes(self)) {
        Py_DECREF(self);
        return NULL;
    }
    if (depth < 0) {
        Py_DECREF(self);
        PyErr_SetString(PyExc_ValueError, "depth must be >= 0");
        return NULL;
    }
    self->depth = depth;
    self->n_features = n_features < 0 ? -1 : n_features;
    self->input_type = input32 ? NPY_FLOAT32 : NPY_FLOAT64;
    /* numpy's result_type(thresholds, input cast) */
    self->work_type = self->threshold_type == NPY_FLOAT32 && input32 ? NPY_FLOAT32 : NPY_FLOAT64;
    self->feature = (const npy_int32 *)PyArray_DATA(self->a_feature);
    self->child = (const npy_int32 *)PyArray_DATA(self->a_child);
    self->roots = (const npy_int32 *)PyArray_DATA(self->a_roots);
    self->threshold = PyArray_BYTES(self->a_threshold);
    self->missing = self->a_missing ? (const npy_uint8 *)PyArray_DATA(self->a_missing) : NULL;
    self->leaf_values = self->a_leaf_values ? PyArray_BYTES(self->a_leaf_values) : NULL;
    self->base = self->a_base ? PyArray_BYTES(self->a_base) : NULL;
    return (PyObject *)self;
}

static PyObject *raise_fault(const Fault *fault) {
    switch (fault->code) {
    case FAULT_ROOT:
        PyErr_Format(PyExc_IndexError, "root of tree %zd is node %lld, outside the nodes",
                     (Py_ssize_t)fault->node, fault->index);
        break;
    case FAULT_FEATURE:
        PyErr_Format(PyExc_IndexError, "node %zd reads column %lld, outside the working matrix",
                     (Py_ssize_t)fault->node, fault->index);
        break;
    case FAULT_CHILD:
        PyErr_Format(PyExc_IndexError, "node %zd leads to node %lld, outside the nodes",
                     (Py_ssize_t)fault->node, fault->index);
        break;
    default: {
        PyObject *row = PyFloat_FromDouble(fault->payload);
        if (row != NULL) {
            PyErr_Format(PyExc_IndexError, "leaf %zd holds leaf row %R, outside leaf_values",
                         (Py_ssize_t)fault->node, row);
            Py_DECREF(row);
        }
    }
    }
    return NULL;
}

/* -- running a batch: row blocks, threads ---------------------------------------------------- */

/* Rows of inputs cast per block in ``raw``: the block's working rows stay in the first cache
 * levels while every tree walks them. Changed for measurements only (``_tune``). */
static npy_intp block_rows = 256;
#define MAX_BLOCK_ROWS 65536 /* _tune's: the per-thread buffer is block x (width + 1) values */
/* (tree, row) pairs each thread must have before a batch is split between threads: below it,
 * starting and joining a thread costs more than it saves. */
static npy_intp thread_pairs = 1 << 15;
#define CHUNKS_PER_THREAD 4 /* units of a split batch per thread: a late thread claims fewer */

typedef struct {
    const Trees *self;
    const char *X;  /* the inputs (``raw``) or the working matrix (``sum``) */
    int x_type;     /* X's dtype */
    int prepared;   /* X is the working matrix */
    int nan;        /* ``sum``: whether the working matrix holds a NaN */
    int trusted;    /* ``raw``: every node's indices are in range (``all_in_range``) */
    npy_intp lo, hi; /* the rows of this job */
    npy_intp d;     /* X's columns */
    char *out;
    npy_intp n_out;
    double divisor; /* ``raw``: 1.0, or what the sums are divided by */
    char *buffer;   /* ``raw``: ``block`` working rows */
    npy_intp block; /* ``raw``: rows cast at a time (block_rows when the call began) */
    int ok;
    Fault fault;
} Job;

/* Working rows of inputs: cast to the input type, then to the working type (exact or not, as
 * numpy's astype rounds), and the sentinel column (-inf). Returns whether a value is NaN. */
#define DEFINE_CAST(XT, IT, WT)                                                               \
    static int cast_##XT##_##IT##_##WT(const XT *x, npy_intp n, npy_intp d, WT *w) {          \
        int nan = 0;                                                                          \
        for (npy_intp r = 0; r < n; r++) {                                                    \
            for (npy_intp j = 0; j < d; j++) {                                                \
                WT v = (WT)(IT)x[r * d + j];                                                  \
                nan |= v != v;                                                                \
                w[r * (d + 1) + j] = v;                                                       \
            }                                                                                 \
            w[r * (d + 1) + d] = (WT)-INFINITY;                                               \
        }                                                                                     \
        return nan;                                                                           \
    }

DEFINE_CAST(double, double, double)
DEFINE_CAST(double, float, double)
DEFINE_CAST(double, float, float)
DEFINE_CAST(float, double, double)
DEFINE_CAST(float, float, double)
DEFINE_CAST(float, float, float)

static int cast_rows(const Trees *self, int x_type, const char *X, npy_intp n, npy_intp d,
                     char *w) {
    int x32 = x_type == NPY_FLOAT32, i32 = self->input_type == NPY_FLOAT32;
    int w32 = self->work_type == NPY_FLOAT32;
    if (w32) {
        return x32 ? cast_float_float_float((const float *)X, n, d, (float *)w)
                   : cast_double_float_float((const double *)X, n, d, (float *)w);
    }
    if (x32) {
        return i32 ? cast_float_float_double((const float *)X, n, d, (double *)w)
                   : cast_float_double_double((const float *)X, n, d, (double *)w);
    }
    return i32 ? cast_double_float_double((const double *)X, n, d, (double *)w)
               : cast_double_double_double((const double *)X, n, d, (double *)w);
}

#define DISPATCH_OUT(WT, TT)                                                                  \
    (self->out_type == NPY_FLOAT64                                                            \
         ? sum_##WT##_##TT##_double(self, (const WT *)W, n, m, (double *)out, n_out, flags,   \
                                    fault)                                                    \
         : sum_##WT##_##TT##_float(self, (const WT *)W, n, m, (float *)out, n_out, flags,     \
                                   fault))

static int sum_rows(const Trees *self, int w_type, const char *W, npy_intp n, npy_intp m,
                    char *out, npy_intp n_out, int flags, Fault *fault) {
    if (w_type == NPY_FLOAT64) {
        return self->threshold_type == NPY_FLOAT64 ? DISPATCH_OUT(double, double)
                                                   : DISPATCH_OUT(double, float);
    }
    return self->threshold_type == NPY_FLOAT64 ? DISPATCH_OUT(float, double)
                                               : DISPATCH_OUT(float, float);
}

static void run_job(Job *job) {
    const Trees *self = job->self;
    npy_intp out_size = self->out_type == NPY_FLOAT64 ? 8 : 4;
    npy_intp x_size = job->x_type == NPY_FLOAT64 ? 8 : 4;
    job->ok = 1;
    if (job->prepared) {
        job->ok = sum_rows(self, job->x_type, job->X + job->lo * job->d * x_size,
                           job->hi - job->lo, job->d, job->out + job->lo * job->n_out * out_size,
                           job->n_out, job->nan ? WALK_NAN : 0, &job->fault);
        return;
    }
    for (npy_intp b = job->lo; b < job->hi && job->ok; b += job->block) {
        npy_intp nb = job->hi - b < job->block ? job->hi - b : job->block;
        int flags = cast_rows(self, job->x_type, job->X + b * job->d * x_size, nb, job->d,
                              job->buffer)
                        ? WALK_NAN
                        : 0;
        flags |= job->trusted ? WALK_TRUSTED : 0;
        job->ok = sum_rows(self, self->work_type, job->buffer, nb, job->d + 1,
                           job->out + b * job->n_out * out_size, job->n_out, flags, &job->fault);
    }
    if (!job->ok || job->divisor == 1.0) {
        return;
    }
    npy_intp count = (job->hi - job->lo) * job->n_out;
    if (self->out_type == NPY_FLOAT64) {
        double *o = (double *)job->out + job->lo * job->n_out;
        for (npy_intp i = 0; i < count; i++) {
            o[i] = o[i] / job->divisor;
        }
    } else {
        float *o = (float *)job->out + job->lo * job->n_out;
        float divisor = (float)job->divisor;
        for (npy_intp i = 0; i < count; i++) {
            o[i] = o[i] / divisor;
        }
    }
}

/* A batch's row chunks as pool units (pool.c): each unit its own job, on the buffer of the
 * thread (slot) that runs it. */
typedef struct {
    Job *jobs;     /* one per unit, its rows set */
    char *buffers; /* one ``buffer`` bytes per slot */
    npy_intp buffer;
} Chunks;

static void run_chunk(void *ctx, npy_intp unit, npy_intp slot) {
    Chunks *chunks = ctx;
    Job *job = &chunks->jobs[unit];
    job->buffer = chunks->buffer ? chunks->buffers + slot * chunks->buffer : NULL;
    run_job(job);
}

/* Runs ``proto`` over its rows on up to ``threads`` threads (the caller's one of them), in
 * contiguous chunks (a few per thread) that the threads claim one at a time (pool.c): every
 * row is summed by one thread, in tree order, so the result is one thread's to the bit. Called
 * without the GIL. Returns 0 and sets ``fault`` (the first faulty chunk's, in row order) on a
 * bad index, -1 when memory runs out. */
static int run_batch(const Job *proto, npy_intp threads, Fault *fault, npy_intp *used) {
    const Trees *self = proto->self;
    npy_intp n = proto->hi - proto->lo;
    npy_intp most = n * self->n_trees / thread_pairs;
    if (threads > MSK_MAX_THREADS) { /* the setting's range (modelshelf.set_threads), whoever calls */
        threads = MSK_MAX_THREADS;
    }
    if (threads > most) {
        threads = most;
    }
    if (threads > n / LANES) {
        threads = n / LANES;
    }
    if (threads < 1) {
        threads = 1;
    }
    *used = threads;
    npy_intp units = threads == 1 ? 1 : threads * CHUNKS_PER_THREAD;
    if (units > n / LANES && threads > 1) {
        units = n / LANES; /* at least a lane group of rows each: n / LANES >= threads here */
    }
    npy_intp w_size = self->work_type == NPY_FLOAT64 ? 8 : 4;
    npy_intp block = block_rows; /* read once: _tune may change it meanwhile */
    npy_intp buffer = proto->prepared ? 0 : block * (proto->d + 1) * w_size;
    Job *jobs = calloc((size_t)units, sizeof(Job));
    char *buffers = buffer ? malloc((size_t)(threads * buffer)) : NULL;
    int result = 1;
    if (jobs == NULL || (buffer && buffers == NULL)) {
        result = -1;
        goto done;
    }
    for (npy_intp u = 0; u < units; u++) {
        jobs[u] = *proto;
        jobs[u].lo = proto->lo + n * u / units;
        jobs[u].hi = proto->lo + n * (u + 1) / units;
        jobs[u].block = block;
    }
    Chunks chunks = {jobs, buffers, buffer};
    msk_pool_run(run_chunk, &chunks, units, threads);
    for (npy_intp u = 0; u < units; u++) {
        if (!jobs[u].ok) {
            *fault = jobs[u].fault;
            result = 0;
            break;
        }
    }
done:
    free(jobs);
    free(buffers);
    return result;
}

/* The threads that ran, or the error. */
static PyObject *finish_batch(int result, const Fault *fault, npy_intp used) {
    if (result < 0) {
        return PyErr_NoMemory();
    }
    if (result == 0) {
        return raise_fault(fault);
    }
    return PyLong_FromSsize_t((Py_ssize_t)used);
}

/* ``out`` checked against ``n`` rows of this forest's outputs; 0 with an error set if not. */
static int check_out(Trees *self, PyObject *out_obj, PyObject *in_obj, npy_intp n) {
    if (!msk_check_array(out_obj, "out", self->out_type, 2)) {
        return 0;
    }
    PyArrayObject *out_arr = (PyArrayObject *)out_obj;
    if (PyArray_DIM(out_arr, 0) != n || PyArray_DIM(out_arr, 1) != self->n_groups * self->width) {
        PyErr_SetString(PyExc_ValueError, "out must hold one row per input row, one column per output");
        return 0;
    }
    if (!PyArray_ISWRITEABLE(out_arr) ||
        PyArray_DATA(out_arr) == PyArray_DATA((PyArrayObject *)in_obj)) {
        PyErr_SetString(PyExc_ValueError, "out must be a writable array of its own");
        return 0;
    }
    return 1;
}

/* An input matrix's dtype, float32 or float64 (else float64, which the check then refuses). */
static int float_type_of(PyObject *obj) {
    int type_num = PyArray_Check(obj) ? PyArray_TYPE((PyArrayObject *)obj) : NPY_FLOAT64;
    return is_float_type(type_num) ? type_num : NPY_FLOAT64;
}

static PyObject *Trees_sum(Trees *self, PyObject *args) {
    PyObject *w_obj, *out_obj;
    Py_ssize_t threads = 1;
    if (!PyArg_ParseTuple(args, "OO|n:sum", &w_obj, &out_obj, &threads)) {
        return NULL;
    }
    int w_type = float_type_of(w_obj);
    if (!msk_check_array(w_obj, "W", w_type, 2)) {
        return NULL;
    }
    PyArrayObject *w_arr = (PyArrayObject *)w_obj;
    npy_intp n = PyArray_DIM(w_arr, 0), m = PyArray_DIM(w_arr, 1);
    if (!check_out(self, out_obj, w_obj, n)) {
        return NULL;
    }
    Job job = {.self = self, .X = PyArray_BYTES(w_arr), .x_type = w_type, .prepared = 1,
               .lo = 0, .hi = n, .d = m, .out = PyArray_BYTES((PyArrayObject *)out_obj),
               .n_out = self->n_groups * self->width, .divisor = 1.0};
    Fault fault = {0, 0, 0, 0.0};
    int result;
    npy_intp used = 1;
    Py_BEGIN_ALLOW_THREADS;
    npy_intp count = n * m;
    for (npy_intp i = 0; i < count && !job.nan; i++) {
        job.nan = w_type == NPY_FLOAT64 ? isnan(((const double *)job.X)[i])
                                        : isnan(((const float *)job.X)[i]);
    }
    result = run_batch(&job, threads, &fault, &used);
    Py_END_ALLOW_THREADS;
    return finish_batch(result, &fault, used);
}

/* Whether every node's indices are in range for the inputs' working rows (n_features + 1
 * columns): its feature a column, its children nodes. A node that reads the sentinel column
 * (-inf: never greater than a threshold, never NaN) only ever goes to its first child. Checked
 * once, at the first batch of more than LANES rows or the second call (not at load nor at the
 * first prediction, so that they stay as fast); then ``raw`` walks without checks per step. */
static int all_in_range(const Trees *self) {
    npy_intp m = self->n_features + 1, n = self->n_nodes;
    for (npy_intp i = 0; i < n; i++) {
        npy_intp f = self->feature[i], c = self->child[i];
        if ((npy_uintp)f >= (npy_uintp)m || c < 0 || c + (f != self->n_features) >= n) {
            return 0;
        }
    }
    return 1;
}

static PyObject *Trees_raw(Trees *self, PyObject *args) {
    PyObject *x_obj, *out_obj;
    double divisor;
    Py_ssize_t threads;
    if (!PyArg_ParseTuple(args, "OOdn:raw", &x_obj, &out_obj, &divisor, &threads)) {
        return NULL;
    }
    int x_type = float_type_of(x_obj);
    if (!msk_check_array(x_obj, "X", x_type, 2)) {
        return NULL;
    }
    PyArrayObject *x_arr = (PyArrayObject *)x_obj;
    npy_intp n = PyArray_DIM(x_arr, 0), d = PyArray_DIM(x_arr, 1);
    if (self->n_features < 0 || d != self->n_features) {
        PyErr_Format(PyExc_ValueError, "X: expected %zd columns, found %zd",
                     (Py_ssize_t)self->n_features, (Py_ssize_t)d);
        return NULL;
    }
    if (!check_out(self, out_obj, x_obj, n)) {
        return NULL;
    }
    /* With the GIL held: one caller decides. Not at the first call of one row: its cost would
     * fall on the load + first prediction that loads are measured by. */
    if (self->trust == 0 && (n > LANES || self->calls++ > 0)) {
        self->trust = all_in_range(self) ? 1 : -1;
    }
    Job job = {.self = self, .X = PyArray_BYTES(x_arr), .x_type = x_type, .lo = 0, .hi = n,
               .d = d, .out = PyArray_BYTES((PyArrayObject *)out_obj),
               .n_out = self->n_groups * self->width, .divisor = divisor,
               .trusted = self->trust == 1};
    Fault fault = {0, 0, 0, 0.0};
    int result;
    npy_intp used = 1;
    if (n <= LANES) { /* one thread, a stack buffer, the GIL kept (see the top of this file) */
        char buffer[LANES * 64 * 8];
        if ((d + 1) * LANES * 8 <= (npy_intp)sizeof(buffer)) {
            job.buffer = buffer;
            job.block = LANES;
            run_job(&job);
            return finish_batch(job.ok, &job.fault, 1);
        }
    }
    Py_BEGIN_ALLOW_THREADS;
    result = run_batch(&job, threads, &fault, &used);
    Py_END_ALLOW_THREADS;
    return finish_batch(result, &fault, used);
}

/* _tune(block_rows, thread_pairs): the batch constants, for measurements; 0 keeps one. */
PyObject *msk_trees_tune(PyObject *module, PyObject *args) {
    Py_ssize_t block = 0, pairs = 0;
    if (!PyArg_ParseTuple(args, "|nn:_tune", &block, &pairs)) {
        return NULL;
    }
    if (block > MAX_BLOCK_ROWS || pairs < 0 || block < 0) {
        PyErr_Format(PyExc_ValueError, "_tune: block rows must be 0 (keep) to %d, pairs >= 0; got %zd, %zd",
                     MAX_BLOCK_ROWS, block, pairs);
        return NULL;
    }
    if (block > 0) {
        block_rows = block;
    }
    if (pairs > 0) {
        thread_pairs = pairs;
    }
    return Py_BuildValue("nn", (Py_ssize_t)block_rows, (Py_ssize_t)thread_pairs);
}

static PyMethodDef Trees_methods[] = {
    {"sum", (PyCFunction)Trees_sum, METH_VARARGS,
     "sum(W, out, threads=1) -> threads used: per-group sums of leaf outputs (base first) of "
     "every row of the working matrix W, written into out."},
    {"raw", (PyCFunction)Trees_raw, METH_VARARGS,
     "raw(X, out, divisor, threads) -> threads used: the sums of the inputs X (n_features columns, float32 or "
     "float64), cast and given the sentinel column here, divided by divisor, into out."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject msk_TreesType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "modelshelf._kernels._native.Trees",
    .tp_basicsize = sizeof(Trees),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Trees(feature, threshold, child, missing, roots, groups, leaf_values, base, "
              "depth, *, n_features=-1, input32=False): a forest's node arrays (docs/format.md), checked once, and its kernel.",
    .tp_new = Trees_new,
    .tp_dealloc = (destructor)Trees_dealloc,
    .tp_methods = Trees_methods,
};
