/* Text vectorizers, compiled: a batch's feature occurrences to per-document sorted (column,
 * count) entries, through the vocabulary string table or murmurhash3.
 *
 * The reference is the numpy runtime (modelshelf/runtime/text.py, text_lookup.py) and the table
 * layout is docs/format.md, "The vocabulary string table". Tokenization stays in Python (``re``): these
 * kernels take its output, the list of every feature occurrence of the batch (str) and the
 * number of occurrences per document, and return the CSR parts ``(indptr, indices, values,
 * nnz)`` (int64, int64, int64 counts or float64 signed sums; the first nnz entries used):
 *
 * - ``Vocab(terms, runs, columns).counts(features, lengths)``: each feature's UTF-8 bytes
 *   (surrogates passed through, as ``encode_terms``) searched in the run of its byte length, a
 *   column of -1 or no match dropping it; occurrences of one (document, column) counted;
 * - ``hashed_counts(features, lengths, n_features, alternate_sign)``: MurmurHash3 x86 32-bit,
 *   seed 0, of the strict UTF-8 bytes (a lone surrogate raises UnicodeEncodeError, as
 *   ``str.encode``), column ``|h| % n_features``, value +1 or (alternate_sign, h < 0) -1,
 *   summed per (document, column) in float64: integers, exact in any order; a zero sum stays.
 *
 * text_weigh.c then weighs and normalises the counts of a tf-idf or hashing vectorizer.
 *
 * Entries come sorted by column within each document, as the numpy path's sort gives them.
 * ``Vocab`` checks its runs once when made, in O(number of runs): lengths rising, counts
 * positive, runs tiling the blob in order without overflow, one column per term; a column read
 * in the loop is checked against [-1, number of terms). The UTF-8 bytes are gathered with the
 * GIL held; the lookups, hashing, sorting and counting run without it, allocating nothing. */
#include "kernels.h"

#include <stdint.h>
#include <string.h>

/* ---- the batch's features as (bytes, length), gathered with the GIL ---------------------- */

typedef struct {
    PyObject *items;          /* a tuple of the features: holds them while the GIL is released */
    PyObject *keep;           /* bytes made for features with surrogates (lookups only) */
    const char **bytes;
    Py_ssize_t *size;
    Py_ssize_t n;
} Features;

static void features_free(Features *f) {
    Py_CLEAR(f->items);
    Py_CLEAR(f->keep);
    PyMem_Free((void *)f->bytes);
    PyMem_Free(f->size);
    f->bytes = NULL;
    f->size = NULL;
}

/* 0 with an exception set on failure. ``strict``: a str that is not valid UTF-8 (a lone
 * surrogate) raises UnicodeEncodeError; otherwise it is encoded with surrogatepass. */
static int features_gather(Features *f, PyObject *seq, int strict) {
    memset(f, 0, sizeof(*f));
    f->items = PySequence_Tuple(seq);
    if (f->items == NULL) {
        return 0;
    }
    f->n = PyTuple_GET_SIZE(f->items);
    f->bytes = PyMem_Malloc(sizeof(*f->bytes) * (size_t)(f->n ? f->n : 1));
    f->size = PyMem_Malloc(sizeof(*f->size) * (size_t)(f->n ? f->n : 1));
    if (f->bytes == NULL || f->size == NULL) {
        PyErr_NoMemory();
        return 0;
    }
    for (Py_ssize_t i = 0; i < f->n; i++) {
        PyObject *item = PyTuple_GET_ITEM(f->items, i);
        if (!PyUnicode_Check(item)) {
            PyErr_Format(PyExc_TypeError, "feature %zd is %s, not str", i, Py_TYPE(item)->tp_name);
            return 0;
        }
        Py_ssize_t size;
        const char *bytes = PyUnicode_AsUTF8AndSize(item, &size);
        if (bytes == NULL) {
            if (strict || !PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
                return 0;
            }
            PyErr_Clear();
            PyObject *encoded = PyUnicode_AsEncodedString(item, "utf-8", "surrogatepass");
            if (encoded == NULL) {
                return 0;
            }
            if (f->keep == NULL && (f->keep = PyList_New(0)) == NULL) {
                Py_DECREF(encoded);
                return 0;
            }
            int appended = PyList_Append(f->keep, encoded);
            Py_DECREF(encoded); /* the list holds it */
            if (appended < 0) {
                return 0;
            }
            bytes = PyBytes_AS_STRING(encoded);
            size = PyBytes_GET_SIZE(encoded);
        }
        f->bytes[i] = bytes;
        f->size[i] = size;
    }
    return 1;
}

/* ---- the output: CSR parts sized for every occurrence, made before the loop -------------- */

typedef struct {
    PyArrayObject *indptr, *indices, *values;
    npy_int64 *p, *idx;
    char *val;
} Output;

/* ``lengths``: occurrences per document (intp), which must add up to ``n``. */
static int output_make(Output *o, PyObject *lengths, Py_ssize_t n, int value_type) {
    memset(o, 0, sizeof(*o));
    if (!msk_check_array(lengths, "lengths", NPY_INTP, 1)) {
        return 0;
    }
    const npy_intp *len = PyArray_DATA((PyArrayObject *)lengths);
    npy_intp n_docs = PyArray_DIM((PyArrayObject *)lengths, 0), total = 0;
    for (npy_intp d = 0; d < n_docs; d++) {
        if (len[d] < 0 || len[d] > n - total) {
            PyErr_SetString(PyExc_ValueError, "lengths must count the features, document by document");
            return 0;
        }
        total += len[d];
    }
    if (total != n) {
        PyErr_SetString(PyExc_ValueError, "lengths must count the features, document by document");
        return 0;
    }
    npy_intp docs = n_docs + 1, entries = n;
    o->indptr = (PyArrayObject *)PyArray_SimpleNew(1, &docs, NPY_INT64);
    o->indices = (PyArrayObject *)PyArray_SimpleNew(1, &entries, NPY_INT64);
    o->values = (PyArrayObject *)PyArray_SimpleNew(1, &entries, value_type);
    if (o->indptr == NULL || o->indices == NULL || o->values == NULL) {
        return 0;
    }
    o->p = PyArray_DATA(o->indptr);
    o->idx = PyArray_DATA(o->indices);
    o->val = PyArray_BYTES(o->values);
    return 1;
}

static void output_free(Output *o) {
    Py_CLEAR(o->indptr);
    Py_CLEAR(o->indices);
    Py_CLEAR(o->values);
}

static PyObject *output_result(Output *o, npy_int64 nnz) {
    PyObject *result = Py_BuildValue("(OOOL)", o->indptr, o->indices, o->values, (long long)nnz);
    output_free(o);
    return result;
}

/* In-place ascending sort of keys[0..n): insertion sort for short runs, heapsort otherwise
 * (no recursion, no allocation). Equal keys are indistinguishable, so stability is moot. */
static void sort_keys(npy_int64 *keys, npy_intp n) {
    if (n <= 24) {
        for (npy_intp i = 1; i < n; i++) {
            npy_int64 key = keys[i];
            npy_intp j = i;
            for (; j > 0 && keys[j - 1] > key; j--) {
                keys[j] = keys[j - 1];
            }
            keys[j] = key;
        }
        return;
    }
    for (npy_intp start = n / 2; start-- > 0;) {
        for (npy_intp root = start;;) {
            npy_intp child = 2 * root + 1;
            if (child >= n) break;
            if (child + 1 < n && keys[child + 1] > keys[child]) child++;
            if (keys[root] >= keys[child]) break;
            npy_int64 t = keys[root]; keys[root] = keys[child]; keys[child] = t;
            root = child;
        }
    }
    for (npy_intp end = n - 1; end > 0; end--) {
        npy_int64 t = keys[0]; keys[0] = keys[end]; keys[end] = t;
        for (npy_intp root = 0;;) {
            npy_intp child = 2 * root + 1;
            if (child >= end) break;
            if (child + 1 < end && keys[child + 1] > keys[child]) child++;
            if (keys[root] >= keys[child]) break;
            npy_int64 t2 = keys[root]; keys[root] = keys[child]; keys[child] = t2;
            root = child;
        }
    }
}

/* ---- the vocabulary --------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyArrayObject *a_terms, *a_runs, *a_columns;
    const npy_uint8 *terms;
    const npy_int64 *runs;  /* n_runs rows of (byte length, offset, count) */
    npy_intp *first;        /* each run's first sorted position */
    const char *columns;    /* int32 or int64 */
    int columns_type;
    npy_intp n_terms, n_runs, n_columns;
} Vocab;

static int Vocab_clear(Vocab *self) {
    Py_CLEAR(self->a_terms);
    Py_CLEAR(self->a_runs);
    Py_CLEAR(self->a_columns);
    PyMem_Free(self->first);
    self->first = NULL;
    return 0;
}

static void Vocab_dealloc(Vocab *self) {
    Vocab_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int vocab_fail(const char *message) {
    PyErr_SetString(PyExc_ValueError, message);
    return 0;
}

/* The runs, checked as Vocabulary.from_spec does (again: the kernel trusts nothing else). */
static int vocab_check(Vocab *self) {
    npy_intp expected = 0, total = 0;
    for (npy_intp r = 0; r < self->n_runs; r++) {
        npy_int64 length = self->runs[3 * r], offset = self->runs[3 * r + 1],
                  count = self->runs[3 * r + 2];
        if (length < 0 || count <= 0 || (r > 0 && length <= self->runs[3 * (r - 1)])) {
            return vocab_fail("runs must have rising lengths and positive counts");
        }
        if (length == 0 && count != 1) {
            return vocab_fail("one empty term");
        }
        if (count > self->n_columns - total) {
            return vocab_fail("one column per term");
        }
        if (offset != expected || length > (self->n_terms - offset) / count) {
            return vocab_fail("runs must tile the terms blob in order");
        }
        self->first[r] = total;
        total += count;
        expected = offset + length * count;
    }
    if (expected != self->n_terms) {
        return vocab_fail("runs must cover the blob");
    }
    if (total != self->n_columns) {
        return vocab_fail("one column per term");
    }
    return 1;
}

static PyObject *Vocab_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *keywords[] = {"terms", "runs", "columns", NULL};
    PyObject *terms, *runs, *columns;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO:Vocab", keywords, &terms, &runs,
                                     &columns)) {
        return NULL;
    }
    int columns_type = PyArray_Check(columns) ? PyArray_TYPE((PyArrayObject *)columns) : 0;
    if (columns_type != NPY_INT64) {
        columns_type = NPY_INT32;
    }
    if (!msk_check_array(terms, "terms", NPY_UINT8, 1) ||
        !msk_check_array(runs, "runs", NPY_INT64, 2) ||
        !msk_check_array(columns, "columns", columns_type, 1)) {
        return NULL;
    }
    if (PyArray_DIM((PyArrayObject *)runs, 1) != 3) {
        PyErr_SetString(PyExc_ValueError, "runs must be rows of (length, offset, count)");
        return NULL;
    }
    Vocab *self = (Vocab *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    Py_INCREF(terms);
    Py_INCREF(runs);
    Py_INCREF(columns);
    self->a_terms = (PyArrayObject *)terms;
    self->a_runs = (PyArrayObject *)runs;
    self->a_columns = (PyArrayObject *)columns;
    self->terms = PyArray_DATA(self->a_terms);
    self->runs = PyArray_DATA(self->a_runs);
    self->columns = PyArray_BYTES(self->a_columns);
    self->columns_type = columns_type;
    self->n_terms = PyArray_DIM(self->a_terms, 0);
    self->n_runs = PyArray_DIM(self->a_runs, 0);
    self->n_columns = PyArray_DIM(self->a_columns, 0);
    self->first = PyMem_Malloc(sizeof(npy_intp) * (size_t)(self->n_runs ? self->n_runs : 1));
    if (self->first == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    if (!vocab_check(self)) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

/* The run of terms of byte length ``size``, or -1: a binary search over the runs. */
static inline npy_intp vocab_run(const Vocab *self, npy_intp size) {
    npy_intp lo = 0, hi = self->n_runs;
    while (lo < hi) {
        npy_intp mid = lo + (hi - lo) / 2;
        if (self->runs[3 * mid] < size) lo = mid + 1;
        else hi = mid;
    }
    return lo < self->n_runs && self->runs[3 * lo] == size ? lo : -1;
}

/* The sorted position of the term ``bytes`` (``size`` bytes), or -1: the run of that byte
 * length, then a search within it (its terms sorted by their bytes) for the last term not
 * above ``bytes``, halving a fixed span (no data-dependent branch to mispredict; what it
 * compares next is fetched while it compares), and one comparison for equality. */
static inline npy_intp vocab_find(const Vocab *self, const char *bytes, npy_intp size) {
    npy_intp r = vocab_run(self, size);
    if (r < 0) return -1;
    if (size == 0) return self->first[r]; /* the empty term, alone in its run */
    const npy_uint8 *run = self->terms + self->runs[3 * r + 1];
    npy_intp base = 0, n = self->runs[3 * r + 2];
    while (n > 1) {
        npy_intp half = n / 2;
        __builtin_prefetch(run + (base + half / 2) * size);
        __builtin_prefetch(run + (base + half + half / 2) * size);
        base = memcmp(run + (base + half) * size, bytes, (size_t)size) <= 0 ? base + half : base;
        n -= half;
    }
    return memcmp(run + base * size, bytes, (size_t)size) == 0 ? self->first[r] + base : -1;
}

typedef struct {
    npy_intp feature;
    npy_int64 column;
} Fault;

/* Every document's counts; 0 with ``fault`` set on a column outside [-1, n_columns). */
static int vocab_counts(const Vocab *self, const Features *f, const npy_intp *lengths,
                        npy_intp n_docs, Output *o, npy_int64 *nnz_out, Fault *fault) {
    npy_int64 *counts = (npy_int64 *)o->val, nnz = 0;
    npy_intp i = 0;
    o->p[0] = 0;
    for (npy_intp d = 0; d < n_docs; d++) {
        npy_int64 *keys = o->idx + nnz; /* the document's columns, then its entries */
        npy_intp k = 0;
        for (npy_intp end = i + lengths[d]; i < end; i++) {
            npy_intp at = vocab_find(self, f->bytes[i], f->size[i]);
            if (at < 0) continue;
            npy_int64 column = self->columns_type == NPY_INT64
                                   ? ((const npy_int64 *)self->columns)[at]
                                   : ((const npy_int32 *)self->columns)[at];
            if (column < -1 || column >= self->n_columns) {
                *fault = (Fault){i, column};
                return 0;
            }
            if (column >= 0) keys[k++] = column;
        }
        sort_keys(keys, k);
        npy_intp m = 0;
        for (npy_intp j = 0; j < k; m++) {
            npy_intp start = j;
            while (j < k && keys[j] == keys[start]) j++;
            keys[m] = keys[start]; /* m <= start: written behind what is still to read */
            counts[nnz + m] = j - start;
        }
        nnz += m;
        o->p[d + 1] = nnz;
    }
    *nnz_out = nnz;
    return 1;
}

static PyObject *Vocab_counts(Vocab *self, PyObject *args) {
    PyObject *features, *lengths;
    if (!PyArg_ParseTuple(args, "OO:counts", &features, &lengths)) {
        return NULL;
    }
    Features f = {0};
    Output o = {0};
    if (!features_gather(&f, features, 0) || !output_make(&o, lengths, f.n, NPY_INT64)) {
        features_free(&f);
        output_free(&o);
        return NULL;
    }
    const npy_intp *len = PyArray_DATA((PyArrayObject *)lengths);
    npy_intp n_docs = PyArray_DIM((PyArrayObject *)lengths, 0);
    npy_int64 nnz = 0;
    Fault fault = {0, 0};
    int ok;
    Py_BEGIN_ALLOW_THREADS;
    ok = vocab_counts(self, &f, len, n_docs, &o, &nnz, &fault);
    Py_END_ALLOW_THREADS;
    features_free(&f);
    if (!ok) {
        output_free(&o);
        PyErr_Format(PyExc_IndexError,
                     "feature %zd has vocabulary column %lld, outside [-1, %zd)",
                     (Py_ssize_t)fault.feature, (long long)fault.column,
                     (Py_ssize_t)self->n_columns);
        return NULL;
    }
    return output_result(&o, nnz);
}

static PyMethodDef Vocab_methods[] = {
    {"counts", (PyCFunction)Vocab_counts, METH_VARARGS,
     "counts(features, lengths) -> (indptr, indices, counts, nnz): per document, the sorted "
     "columns of its features found in the vocabulary and their occurrences."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject msk_VocabType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "modelshelf._kernels._native.Vocab",
    .tp_basicsize = sizeof(Vocab),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Vocab(terms, runs, columns): a vocabulary string table, its runs checked.",
    .tp_new = Vocab_new,
    .tp_dealloc = (destructor)Vocab_dealloc,
    .tp_methods = Vocab_methods,
};

/* ---- hashing ---------------------------------------------------------------------------- */

static inline uint32_t rotl32(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }

/* MurmurHash3 x86 32-bit, seed 0 (sklearn.utils.murmurhash3_32), blocks read little-endian. */
static uint32_t murmur3(const unsigned char *key, npy_intp size) {
    const uint32_t c1 = 0xcc9e2d51u, c2 = 0x1b873593u;
    uint32_t h = 0;
    npy_intp blocks = size / 4;
    for (npy_intp i = 0; i < blocks; i++) {
        const unsigned char *b = key + 4 * i;
        uint32_t k = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                     (uint32_t)b[3] << 24;
        k *= c1;
        k = rotl32(k, 15);
        k *= c2;
        h ^= k;
        h = rotl32(h, 13);
        h = h * 5u + 0xe6546b64u;
    }
    const unsigned char *tail = key + 4 * blocks;
    uint32_t k = 0;
    switch (size & 3) {
    case 3: k ^= (uint32_t)tail[2] << 16; /* fall through */
    case 2: k ^= (uint32_t)tail[1] << 8;  /* fall through */
    case 1:
        k ^= tail[0];
        k *= c1;
        k = rotl32(k, 15);
        k *= c2;
        h ^= k;
    }
    h ^= (uint32_t)size;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

static void hashed(const Features *f, const npy_intp *lengths, npy_intp n_docs,
                   npy_int64 n_features, int alternate_sign, Output *o, npy_int64 *nnz_out) {
    double *sums = (double *)o->val;
    npy_int64 nnz = 0;
    npy_intp i = 0;
    o->p[0] = 0;
    for (npy_intp d = 0; d < n_docs; d++) {
        npy_int64 *keys = o->idx + nnz; /* (column << 1 | negative), then the entries */
        npy_intp k = 0;
        for (npy_intp end = i + lengths[d]; i < end; i++) {
            int32_t h = (int32_t)murmur3((const unsigned char *)f->bytes[i], f->size[i]);
            npy_int64 wide = h;
            npy_int64 column = (wide < 0 ? -wide : wide) % n_features;
            keys[k++] = column << 1 | (alternate_sign && h < 0);
        }
        sort_keys(keys, k);
        npy_intp m = 0;
        for (npy_intp j = 0; j < k; m++) {
            npy_int64 column = keys[j] >> 1;
            double sum = 0.0;
            for (; j < k && keys[j] >> 1 == column; j++) {
                sum += (keys[j] & 1) ? -1.0 : 1.0;
            }
            keys[m] = column;
            sums[nnz + m] = sum;
        }
        nnz += m;
        o->p[d + 1] = nnz;
    }
    *nnz_out = nnz;
}

PyObject *msk_hashed_counts(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *features, *lengths;
    long long n_features;
    int alternate_sign;
    if (!PyArg_ParseTuple(args, "OOLp:hashed_counts", &features, &lengths, &n_features,
                          &alternate_sign)) {
        return NULL;
    }
    if (n_features < 1 || n_features > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "n_features must lie in [1, 2**31)");
        return NULL;
    }
    Features f = {0};
    Output o = {0};
    if (!features_gather(&f, features, 1) || !output_make(&o, lengths, f.n, NPY_FLOAT64)) {
        features_free(&f);
        output_free(&o);
        return NULL;
    }
    const npy_intp *len = PyArray_DATA((PyArrayObject *)lengths);
    npy_intp n_docs = PyArray_DIM((PyArrayObject *)lengths, 0);
    npy_int64 nnz = 0;
    Py_BEGIN_ALLOW_THREADS;
    hashed(&f, len, n_docs, n_features, alternate_sign, &o, &nnz);
    Py_END_ALLOW_THREADS;
    features_free(&f);
    return output_result(&o, nnz);
}

PyObject *msk_murmurhash3_32(PyObject *module, PyObject *arg) {
    (void)module;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    uint32_t h = murmur3((const unsigned char *)view.buf, view.len);
    PyBuffer_Release(&view);
    return PyLong_FromLong((long)(int32_t)h);
}
