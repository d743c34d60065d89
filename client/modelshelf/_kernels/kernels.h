/* The compiled kernels of modelshelf: declarations shared by module.c and one file per model
 * family (trees.c). Each family mirrors its numpy reference in modelshelf/runtime/ and reads
 * the same image arrays; see modelshelf/_kernels/__init__.py for how the runtime picks. */
#ifndef MODELSHELF_KERNELS_H
#define MODELSHELF_KERNELS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* The calls this extension answers, as a number the Python facade checks at import
 * (``_kernels.INTERFACE``): bump both whenever a function's or a type's arguments or results
 * change, so that an extension built from another checkout is refused, never called wrongly. */
#define MSK_INTERFACE 5

#ifndef MSK_MODULE
#define NO_IMPORT_ARRAY
#endif
#define PY_ARRAY_UNIQUE_SYMBOL modelshelf_kernels_ARRAY_API
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

/* image.c: an image's header and array table as numpy views (``image_arrays``), None where
 * the Python reader must serve; ``msk_image_format`` lists the layout and limits it reads. */
PyObject *msk_image_arrays(PyObject *module, PyObject *view);
PyObject *msk_image_format(void);

/* trees.c: the ``Trees`` type (a forest's node arrays, checked once, and its sum kernel). */
extern PyTypeObject msk_TreesType;
PyObject *msk_trees_tune(PyObject *module, PyObject *args);

/* modelshelf.set_threads' upper bound, which every kernel applies whoever calls it */
#define MSK_MAX_THREADS 256

/* pool.c: ``units`` calls of ``unit(ctx, u, slot)``, each u once, on the calling thread (slot 0)
 * and up to ``threads`` - 1 kept workers (slots 1 .. threads - 1); returns when all are done.
 * Called without the GIL; ``unit`` must not touch Python. */
typedef void (*MskUnit)(void *ctx, npy_intp unit, npy_intp slot);
void msk_pool_run(MskUnit unit, void *ctx, npy_intp units, npy_intp threads);

/* dense.c: numpy's own inner loop of the ufunc ``numpy.<name>`` whose operands are all float64
 * (the CPU-dispatched one numpy itself calls), for kernels that must give numpy's bits. 1 and
 * ``*fn``, ``*data`` set when found; 0 when not (or numpy does not import: error cleared). */
typedef void (*MskLoop)(char **args, npy_intp const *dimensions, npy_intp const *steps,
                        void *data);
int msk_float64_loop(const char *name, MskLoop *fn, void **data);

/* link.c: the binary sigmoid link, with the C library's exp and expf. */
PyObject *msk_sigmoid(PyObject *module, PyObject *args);

/* text.c: the ``Vocab`` type (a vocabulary string table, its runs checked once, and its
 * counts kernel), the hashing vectorizer's counts and murmurhash3 of one buffer; text_weigh.c:
 * tf-idf weighting with row norms (``weigh``). */
extern PyTypeObject msk_VocabType;
PyObject *msk_hashed_counts(PyObject *module, PyObject *args);
PyObject *msk_murmurhash3_32(PyObject *module, PyObject *arg);
PyObject *msk_weigh(PyObject *module, PyObject *args);

/* dense.c: the ``Dense`` type (an affine map X @ W + b and a link, by numpy's own float64
 * loops), an MLP's forward pass over a chain of them, and whether numpy's loops were found. */
extern PyTypeObject msk_DenseType;
PyObject *msk_dense_forward(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *msk_dense_ready(PyObject *module, PyObject *unused);
PyObject *msk_dense_rows(PyObject *module, PyObject *args);

/* input.c: a prediction input's common case checked in one call (``float_input``) and
 * ``check_finite``'s (``all_finite``); either answers "valid" or "let the Python checks decide". */
PyObject *msk_float_input(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *msk_all_finite(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

/* A 1-D or 2-D array argument that a kernel reads in place: C-contiguous, aligned, of
 * ``type_num``, with ``ndim`` dimensions. Sets a TypeError naming ``role`` and returns 0 if not. */
int msk_check_array(PyObject *obj, const char *role, int type_num, int ndim);

#endif
