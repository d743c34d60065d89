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
 * Every index read from the arrays (roots, features, children, leaf rows) is checked in the
 * loop before use; a bad one stops the kernel with IndexError, which the runtime reports as
 * ManifestError. Nothing is allocated while walking, and the GIL is released around it. */
#include "kernels.h"

#include <math.h>

typedef struct {
    PyObject_HEAD
    /* the arrays, kept alive while this object reads them (NULL where absent) */
    PyArrayObject *a_feature, *a_threshold, *a_child, *a_missing, *a_roots, *a_groups,
        *a_leaf_values, *a_base;
    const npy_int32 *feature, *child, *roots;
    const char *threshold;   /* float32 or float64: split thresholds, leaf payloads */
    const npy_uint8 *missing; /* NULL: NaN goes to the first child */
    const npy_intp *groups;   /* n_groups + 1 offsets into roots */
    const char *leaf_values;  /* NULL: a leaf's payload is its output */
    const char *base;         /* NULL: a sum starts from its first tree */
    int threshold_type, out_type;
    npy_intp n_nodes, n_trees, n_groups, width, n_rows, depth;
} Trees;

enum { FAULT_ROOT = 1, FAULT_FEATURE, FAULT_CHILD, FAULT_PAYLOAD };

typedef struct {
    int code;
    npy_intp node;   /* where it was read */
    long long index; /* what was read: a node or column index */
    double payload;  /* or a leaf row, as stored */
} Fault;

/* ``k`` walks (at most LANES) in lockstep, lane i from ``nodes[i]`` over the working-matrix row
 * ``rows[i]``: their chains of dependent loads are independent, so the processor overlaps them,
 * where one walk at a time would wait for every load in turn. Lanes are the rows of a batch
 * through one tree, or, for fewer rows than lanes, consecutive trees of one row. ``nodes``
 * receives the node each lane reaches: a leaf (its own child) or where ``depth`` steps end.
 * 0 with ``fault`` set on a bad index. WT: the working matrix's type, TT: the thresholds'. */
#define LANES 8
#define DEFINE_WALK(WT, TT)                                                                   \
    static inline int walk_##WT##_##TT(const Trees *self, const WT *const *rows, npy_intp m,  \
                                       npy_intp k, npy_intp *nodes, Fault *fault) {          \
        const TT *threshold = (const TT *)self->threshold;                                    \
        for (npy_intp step = 0; step < self->depth; step++) {                                 \
            int moving = 0;                                                                   \
            for (npy_intp i = 0; i < k; i++) {                                                \
                npy_intp node = nodes[i];                                                     \
                npy_intp first = self->child[node];                                           \
                if (first == node) {                                                          \
                    continue; /* a leaf: its sentinel column would keep it there */           \
                }                                                                             \
                moving = 1;                                                                   \
                npy_intp column = self->feature[node];                                        \
                if ((npy_uintp)column >= (npy_uintp)m) {                                      \
                    *fault = (Fault){FAULT_FEATURE, node, column, 0.0};                       \
                    return 0;                                                                 \
                }                                                                             \
                WT x = rows[i][column];                                                       \
                npy_intp right;                                                               \
                if (isnan(x)) {                                                               \
                    right = self->missing ? (self->missing[node >> 3] >> (node & 7)) & 1 : 0; \
                } else {                                                                      \
                    right = x > threshold[node];                                              \
                }                                                                             \
                npy_intp next = first + right;                                                \
                if ((npy_uintp)next >= (npy_uintp)self->n_nodes) {                            \
                    *fault = (Fault){FAULT_CHILD, node, next, 0.0};                           \
                    return 0;                                                                 \
                }                                                                             \
                nodes[i] = next;                                                              \
            }                                                                                 \
            if (!moving) {                                                                    \
                break;                                                                        \
            }                                                                                 \
        }                                                                                     \
        return 1;                                                                             \
    }

DEFINE_WALK(double, double)
DEFINE_WALK(double, float)
DEFINE_WALK(float, double)
DEFINE_WALK(float, float)

/* The root of tree ``t``, checked. */
#define ROOT(t, into)                                                                         \
    do {                                                                                      \
        npy_intp root_ = self->roots[t];                                                      \
        if ((npy_uintp)root_ >= (npy_uintp)self->n_nodes) {                                   \
            *fault = (Fault){FAULT_ROOT, (t), root_, 0.0};                                    \
            return 0;                                                                         \
        }                                                                                     \
        (into) = root_;                                                                       \
    } while (0)

/* Adds the outputs of ``leaf`` to the row's outputs ``o`` (or sets them: the group's first tree
 * without a base). The leaf row is checked as numpy's astype(intp) then gather would take it:
 * truncated toward zero, so (-1, L) reads rows 0..L-1. */
#define ADD(DT, o, leaf, set)                                                                 \
    do {                                                                                      \
        if (values == NULL) {                                                                 \
            DT v_ = (DT)threshold[leaf];                                                      \
            (o)[0] = (set) ? v_ : (o)[0] + v_;                                                \
            break;                                                                            \
        }                                                                                     \
        double payload_ = (double)threshold[leaf];                                            \
        if (!(payload_ > -1.0 && payload_ < (double)self->n_rows)) {                          \
            *fault = (Fault){FAULT_PAYLOAD, (leaf), 0, payload_};                             \
            return 0;                                                                         \
        }                                                                                     \
        const DT *v_ = values + (npy_intp)payload_ * w;                                       \
        if (set) {                                                                            \
            for (npy_intp j_ = 0; j_ < w; j_++) {                                             \
                (o)[j_] = v_[j_];                                                             \
            }                                                                                 \
        } else {                                                                              \
            for (npy_intp j_ = 0; j_ < w; j_++) {                                             \
                (o)[j_] = (o)[j_] + v_[j_];                                                   \
            }                                                                                 \
        }                                                                                     \
    } while (0)

/* The sums of ``n`` rows of ``W`` (``m`` columns) into ``out`` (``n_out`` columns), group by
 * group. A batch walks trees outside and rows inside, LANES rows at a time: a tree's nodes stay
 * in cache while every row walks it. Fewer rows than lanes walk LANES trees at a time per row.
 * Either way each output receives its trees one after the other, in order. DT: the output
 * type (leaf values', or the thresholds' when payloads are outputs). */
#define DEFINE_SUM(WT, TT, DT)                                                                \
    static int sum_##WT##_##TT##_##DT(const Trees *self, const WT *W, npy_intp n,            \
                                      npy_intp m, DT *out, npy_intp n_out, Fault *fault) {   \
        const TT *threshold = (const TT *)self->threshold;                                    \
        const DT *values = (const DT *)self->leaf_values;                                     \
        const DT *base = (const DT *)self->base;                                              \
        const npy_intp w = self->width;                                                       \
        npy_intp nodes[LANES];                                                                \
        const WT *rows[LANES];                                                                \
        for (npy_intp g = 0; g < self->n_groups; g++) {                                       \
            DT *column = out + g * w;                                                         \
            npy_intp lo = self->groups[g], hi = self->groups[g + 1];                          \
            if (base != NULL || lo == hi) {                                                   \
                for (npy_intp r = 0; r < n; r++) {                                            \
                    for (npy_intp j = 0; j < w; j++) {                                        \
                        column[r * n_out + j] = base != NULL ? base[g * w + j] : (DT)0;       \
                    }                                                                         \
                }                                                                             \
            }                                                                                 \
            if (n < LANES) { /* lanes: trees */                                               \
                for (npy_intp r = 0; r < n; r++) {                                            \
                    DT *o = column + r * n_out;                                               \
                    for (npy_intp t0 = lo; t0 < hi; t0 += LANES) {                            \
                        npy_intp k = hi - t0 < LANES ? hi - t0 : LANES;                       \
                        for (npy_intp i = 0; i < k; i++) {                                    \
                            ROOT(t0 + i, nodes[i]);                                           \
                            rows[i] = W + r * m;                                              \
                        }                                                                     \
                        if (!walk_##WT##_##TT(self, rows, m, k, nodes, fault)) {              \
                            return 0;                                                         \
                        }                                                                     \
                        for (npy_intp i = 0; i < k; i++) {                                    \
                            ADD(DT, o, nodes[i], base == NULL && t0 + i == lo);               \
                        }                                                                     \
                    }                                                                         \
                }                                                                             \
                continue;                                                                     \
            }                                                                                 \
            for (npy_intp t = lo; t < hi; t++) { /* lanes: rows */                            \
                npy_intp root;                                                                \
                ROOT(t, root);                                                                \
                for (npy_intp r0 = 0; r0 < n; r0 += LANES) {                                  \
                    npy_intp k = n - r0 < LANES ? n - r0 : LANES;                             \
                    for (npy_intp i = 0; i < k; i++) {                                        \
                        nodes[i] = root;                                                      \
                        rows[i] = W + (r0 + i) * m;                                           \
                    }                                                                         \
                    if (!walk_##WT##_##TT(self, rows, m, k, nodes, fault)) {                  \
                        return 0;                                                             \
                    }                                                                         \
                    for (npy_intp i = 0; i < k; i++) {                                        \
                        ADD(DT, column + (r0 + i) * n_out, nodes[i], base == NULL && t == lo); \
                    }                                                                         \
                }                                                                             \
            }                                                                                 \
        }                                                                                     \
        return 1;                                                                             \
    }

DEFINE_SUM(double, double, double)
DEFINE_SUM(double, double, float)
DEFINE_SUM(double, float, double)
DEFINE_SUM(double, float, float)
DEFINE_SUM(float, double, double)
DEFINE_SUM(float, double, float)
DEFINE_SUM(float, float, double)
DEFINE_SUM(float, float, float)

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
static const int INTP[] = {NPY_INTP, 0};
static const int UINT8[] = {NPY_UINT8, 0};
static const int FLOATS[] = {NPY_FLOAT64, NPY_FLOAT32, 0};

static int Trees_clear(Trees *self) {
    Py_CLEAR(self->a_feature);
    Py_CLEAR(self->a_threshold);
    Py_CLEAR(self->a_child);
    Py_CLEAR(self->a_missing);
    Py_CLEAR(self->a_roots);
    Py_CLEAR(self->a_groups);
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
    npy_intp n_offsets = PyArray_DIM(self->a_groups, 0);
    if (n_offsets < 2) {
        return fail("groups needs at least two offsets");
    }
    self->n_groups = n_offsets - 1;
    self->groups = (const npy_intp *)PyArray_DATA(self->a_groups);
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
                               "groups",  "leaf_values", "base", "depth", NULL};
    PyObject *feature, *threshold, *child, *missing, *roots, *groups, *leaf_values, *base;
    Py_ssize_t depth;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOOOOn:Trees", keywords, &feature,
                                     &threshold, &child, &missing, &roots, &groups,
                                     &leaf_values, &base, &depth)) {
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
        !take_array(groups, "groups", INTP, 1, &self->a_groups) ||
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

#define DISPATCH_OUT(WT, TT)                                                                  \
    (self->out_type == NPY_FLOAT64                                                            \
         ? sum_##WT##_##TT##_double(self, (const WT *)W, n, m, (double *)out, n_out, &fault)  \
         : sum_##WT##_##TT##_float(self, (const WT *)W, n, m, (float *)out, n_out, &fault))

static PyObject *Trees_sum(Trees *self, PyObject *args) {
    PyObject *w_obj, *out_obj;
    if (!PyArg_ParseTuple(args, "OO:sum", &w_obj, &out_obj)) {
        return NULL;
    }
    int w_type = PyArray_Check(w_obj) ? PyArray_TYPE((PyArrayObject *)w_obj) : NPY_FLOAT64;
    if (!msk_check_array(w_obj, "W", is_float_type(w_type) ? w_type : NPY_FLOAT64, 2) ||
        !msk_check_array(out_obj, "out", self->out_type, 2)) {
        return NULL;
    }
    PyArrayObject *w_arr = (PyArrayObject *)w_obj, *out_arr = (PyArrayObject *)out_obj;
    npy_intp n = PyArray_DIM(w_arr, 0), m = PyArray_DIM(w_arr, 1);
    npy_intp n_out = PyArray_DIM(out_arr, 1);
    if (PyArray_DIM(out_arr, 0) != n || n_out != self->n_groups * self->width) {
        PyErr_SetString(PyExc_ValueError, "out must hold one row per row of W, one column per output");
        return NULL;
    }
    if (!PyArray_ISWRITEABLE(out_arr) || PyArray_DATA(out_arr) == PyArray_DATA(w_arr)) {
        PyErr_SetString(PyExc_ValueError, "out must be a writable array of its own");
        return NULL;
    }
    const char *W = PyArray_BYTES(w_arr);
    char *out = PyArray_BYTES(out_arr);
    Fault fault = {0, 0, 0, 0.0};
    int ok;
    int tt = self->threshold_type;
    Py_BEGIN_ALLOW_THREADS;
    if (w_type == NPY_FLOAT64) {
        ok = tt == NPY_FLOAT64 ? DISPATCH_OUT(double, double) : DISPATCH_OUT(double, float);
    } else {
        ok = tt == NPY_FLOAT64 ? DISPATCH_OUT(float, double) : DISPATCH_OUT(float, float);
    }
    Py_END_ALLOW_THREADS;
    if (!ok) {
        return raise_fault(&fault);
    }
    Py_RETURN_NONE;
}

static PyMethodDef Trees_methods[] = {
    {"sum", (PyCFunction)Trees_sum, METH_VARARGS,
     "sum(W, out): per-group sums of leaf outputs (base first) of every row of the working "
     "matrix W, written into out."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject msk_TreesType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "modelshelf._kernels._native.Trees",
    .tp_basicsize = sizeof(Trees),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Trees(feature, threshold, child, missing, roots, groups, leaf_values, base, "
              "depth): a forest's node arrays (docs/format.md), checked once, and its kernel.",
    .tp_new = Trees_new,
    .tp_dealloc = (destructor)Trees_dealloc,
    .tp_methods = Trees_methods,
};
