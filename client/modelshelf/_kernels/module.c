/* modelshelf._kernels._native: the compiled kernels' module. It only registers the family
 * types and functions (trees.c, text.c, text_weigh.c, dense.c) and holds the helpers they share; the
 * numpy runtime stays the reference. */
#define MSK_MODULE /* this file imports numpy's C API; the others share its table */
#include "kernels.h"

int msk_check_array(PyObject *obj, const char *role, int type_num, int ndim) {
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s: expected a numpy array, found %s", role,
                     Py_TYPE(obj)->tp_name);
        return 0;
    }
    PyArrayObject *arr = (PyArrayObject *)obj;
    if (PyArray_TYPE(arr) != type_num || PyArray_NDIM(arr) != ndim ||
        !PyArray_IS_C_CONTIGUOUS(arr) || !PyArray_ISALIGNED(arr) ||
        !PyArray_ISNOTSWAPPED(arr)) {
        PyErr_Format(PyExc_TypeError,
                     "%s: expected an aligned C-contiguous %d-D array of type %d, found %d-D "
                     "of type %d",
                     role, ndim, type_num, PyArray_NDIM(arr), PyArray_TYPE(arr));
        return 0;
    }
    return 1;
}

static PyMethodDef native_methods[] = {
    {"dense_forward", (PyCFunction)(void (*)(void))msk_dense_forward, METH_FASTCALL,
     "dense_forward(layers, X, hidden, output) -> an MLP's output activations through a tuple "
     "of Dense layers, or None where the numpy path must serve."},
    {"dense_ready", msk_dense_ready, METH_NOARGS,
     "dense_ready() -> whether numpy's float64 loops the Dense kernel calls were found."},
    {"dense_rows", msk_dense_rows, METH_VARARGS,
     "dense_rows(X, op) -> the row sums (op 0) or maxima (op 1) the dense kernel's softmax "
     "computes, by numpy's loops (for tests)."},
    {"hashed_counts", msk_hashed_counts, METH_VARARGS,
     "hashed_counts(features, lengths, n_features, alternate_sign) -> (indptr, indices, sums, "
     "nnz): per document, the sorted hashed columns of its features and their signed sums."},
    {"murmurhash3_32", msk_murmurhash3_32, METH_O,
     "murmurhash3_32(bytes) -> int: MurmurHash3 x86 32-bit, seed 0, signed."},
    {"float_input", (PyCFunction)(void (*)(void))msk_float_input, METH_FASTCALL,
     "float_input(X, n_features, allow_nan[, within_float32]) -> read-only view of X, or None: "
     "X is a valid model input as it is (2-D native float64, contiguous, n_features columns, "
     "-1 any, finite; within_float32: none that float32 rounds to infinity), else None and the "
     "Python checks decide."},
    {"all_finite", (PyCFunction)(void (*)(void))msk_all_finite, METH_FASTCALL,
     "all_finite(arr, allow_nan) -> bool: True if a contiguous float64 or float32 array has "
     "no infinity (and no NaN unless allowed); False also for arrays it does not read."},
    {"weigh", msk_weigh, METH_VARARGS,
     "weigh(data, indices, indptr, idf, norm): CSR data times idf (or None), then row norms "
     "(0 none, 1 l1, 2 l2), in place."},
    {"sigmoid", msk_sigmoid, METH_VARARGS,
     "sigmoid(raw, out): a binary classifier's [1 - p, p], p = 1 / (1 + exp(-raw)), in raw's "
     "dtype (float32: XGBoost's rounding), with the C library's exp (float32: expf)."},
    {"image_arrays", msk_image_arrays, METH_O,
     "image_arrays(view) -> (image_size, major, minor, checksum, manifest_offset, "
     "manifest_length, arrays) of an image's read-only bytes, or None: the Python reader "
     "(image/_reader.py) then reads it and says what is wrong."},
    {"_tune", msk_trees_tune, METH_VARARGS,
     "_tune(block_rows=0, thread_pairs=0) -> (block_rows, thread_pairs): the tree kernel's "
     "batch constants, for measurements; 0 keeps one."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "modelshelf._kernels._native",
    .m_doc = "Compiled prediction kernels over image arrays (the numpy runtime is the reference).",
    .m_size = -1,
    .m_methods = native_methods,
};

PyMODINIT_FUNC PyInit__native(void) {
    import_array();
    if (PyType_Ready(&msk_TreesType) < 0 || PyType_Ready(&msk_VocabType) < 0 ||
        PyType_Ready(&msk_DenseType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&native_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "Trees", (PyObject *)&msk_TreesType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "Vocab", (PyObject *)&msk_VocabType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    PyObject *format = msk_image_format();
    int added = format != NULL && PyModule_AddObjectRef(module, "IMAGE_FORMAT", format) == 0;
    Py_XDECREF(format);
    if (!added || PyModule_AddObjectRef(module, "Dense", (PyObject *)&msk_DenseType) < 0 ||
        PyModule_AddIntConstant(module, "INTERFACE", MSK_INTERFACE) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
