/* An image's header and array table, read in C: the common case of modelshelf/image/_reader.py
 * (``_parse_header`` and ``_parse_arrays``), which stays the reference and the one that says
 * what is wrong. This reader accepts a subset of what the Python one accepts: any image it does
 * not read whole and in range (a check fails, a name is not UTF-8, a count overflows, the host
 * is not little-endian) gives None, and the Python reader then raises its own error. What it
 * does read is exactly what the Python reader gives: the same checks in the same terms, the
 * same read-only numpy views at the same addresses (tests/unit/test_image_compiled.py).
 *
 * The layout and limits are docs/format.md's; ``IMAGE_FORMAT`` below lists the values this file
 * was written for, and the facade (modelshelf/_kernels/__init__.py) uses this reader only when
 * they equal modelshelf/image/_format.py's. */
#include "kernels.h"

#include <string.h>

#define HEADER_SIZE 64
#define ENTRY_SIZE 96
#define MAX_NDIM 8
#define ALIGNMENT 64
#define VERSION_MAJOR 1
#define MAX_IMAGE_SIZE ((npy_uint64)1 << 40)
#define MAX_ARRAYS ((npy_uint64)1 << 20)
#define MAX_NAME_LENGTH 1024
#define MAX_STRINGS_SIZE (MAX_ARRAYS * MAX_NAME_LENGTH)
#define MAX_MANIFEST_SIZE ((npy_uint64)64 << 20)
#define MAX_DIM ((npy_uint64)1 << 40)
static const char MAGIC[8] = {'\x89', 'M', 'S', 'H', 'E', 'L', 'F', '\n'};

/* numpy's type for each dtype code from 1 (code 0 is none); every one little-endian, as the
 * host */
static const int DTYPE_CODES[] = {
    -1,        NPY_BOOL,  NPY_INT8,   NPY_UINT8, NPY_INT16,   NPY_UINT16,  NPY_INT32,
    NPY_UINT32, NPY_INT64, NPY_UINT64, NPY_FLOAT16, NPY_FLOAT32, NPY_FLOAT64,
};
static const npy_uint64 ITEMSIZES[] = {0, 1, 1, 1, 2, 2, 4, 4, 8, 8, 2, 4, 8};
#define N_CODES ((int)(sizeof DTYPE_CODES / sizeof DTYPE_CODES[0]))

static npy_uint64 u64(const unsigned char *p) {
    npy_uint64 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static npy_uint32 u32(const unsigned char *p) {
    npy_uint32 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static npy_uint16 u16(const unsigned char *p) {
    npy_uint16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The header's fields (format.md, "Header") */
typedef struct {
    npy_uint64 image_size, table_offset, strings_offset, manifest_offset;
    npy_uint32 checksum, count, manifest_length, strings_length;
    npy_uint16 major, minor;
} Header;

/* 1 if ``p`` (``n`` bytes) starts with a header the Python reader accepts, read into ``h``. */
static int read_header(const unsigned char *p, npy_uint64 n, Header *h) {
    if (n < HEADER_SIZE || memcmp(p, MAGIC, sizeof MAGIC) != 0) {
        return 0;
    }
    h->major = u16(p + 8);
    h->minor = u16(p + 10);
    npy_uint32 flags = u32(p + 12);
    h->image_size = u64(p + 16);
    h->checksum = u32(p + 24);
    h->count = u32(p + 28);
    h->table_offset = u64(p + 32);
    h->strings_offset = u64(p + 40);
    h->manifest_offset = u64(p + 48);
    h->manifest_length = u32(p + 56);
    h->strings_length = u32(p + 60);
    return h->major == VERSION_MAJOR && flags == 0 && h->image_size <= MAX_IMAGE_SIZE &&
           h->image_size == n && h->count <= MAX_ARRAYS && h->table_offset == HEADER_SIZE &&
           h->strings_offset == h->table_offset + (npy_uint64)h->count * ENTRY_SIZE &&
           h->strings_length <= MAX_STRINGS_SIZE &&
           h->manifest_offset == h->strings_offset + h->strings_length &&
           h->manifest_length <= MAX_MANIFEST_SIZE &&
           h->manifest_offset + h->manifest_length <= h->image_size;
}

/* Adds entry ``e``'s array to ``arrays`` (a view of ``base``'s memory ``p``): 1; 0 if the
 * Python reader would refuse it (nothing raised); -1 with an exception (out of memory). */
static int add_array(PyObject *arrays, PyObject *base, const unsigned char *p, const Header *h,
                     const unsigned char *e, npy_uint64 *previous_end) {
    npy_uint64 offset = u64(e), length = u64(e + 8);
    npy_uint32 name_offset = u32(e + 16);
    npy_uint16 name_length = u16(e + 20);
    int code = e[22], ndim = e[23];
    if (u64(e + 24 + 8 * MAX_NDIM) != 0 || name_length < 1 || name_length > MAX_NAME_LENGTH ||
        (npy_uint64)name_offset + name_length > h->strings_length || code < 1 ||
        code >= N_CODES || ndim > MAX_NDIM) {
        return 0;
    }
    npy_intp dims[MAX_NDIM];
    npy_uint64 items = 1;
    for (int i = 0; i < MAX_NDIM; i++) {
        npy_uint64 d = u64(e + 24 + 8 * i);
        if (i >= ndim) {
            if (d != 0) {
                return 0;
            }
            continue;
        }
        if (d > MAX_DIM || __builtin_mul_overflow(items, d, &items)) {
            return 0; /* an overflowing count cannot equal a 64-bit length: refused there too */
        }
        dims[i] = (npy_intp)d;
    }
    npy_uint64 bytes;
    if (__builtin_mul_overflow(items, ITEMSIZES[code], &bytes) || bytes != length ||
        offset % ALIGNMENT != 0 || offset < *previous_end || length > h->image_size ||
        offset > h->image_size - length) {
        return 0;
    }
    const char *name_bytes = (const char *)p + h->strings_offset + name_offset;
    PyObject *name = PyUnicode_DecodeUTF8(name_bytes, name_length, "strict");
    if (name == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
            return -1;
        }
        PyErr_Clear();
        return 0;
    }
    int seen = PyDict_Contains(arrays, name);
    PyArray_Descr *descr = seen == 0 ? PyArray_DescrFromType(DTYPE_CODES[code]) : NULL;
    if (descr == NULL) {
        Py_DECREF(name);
        return seen > 0 ? 0 : -1;
    }
    /* steals descr; flags 0: read-only, C order; contiguity and alignment computed below */
    PyObject *arr = PyArray_NewFromDescr(&PyArray_Type, descr, ndim, dims, NULL,
                                         (void *)(p + offset), 0, NULL);
    if (arr == NULL) {
        Py_DECREF(name);
        return -1;
    }
    PyArray_UpdateFlags((PyArrayObject *)arr, NPY_ARRAY_UPDATE_ALL);
    Py_INCREF(base);
    if (PyArray_SetBaseObject((PyArrayObject *)arr, base) < 0) { /* steals base */
        Py_DECREF(arr);
        Py_DECREF(name);
        return -1;
    }
    int added = PyDict_SetItem(arrays, name, arr);
    Py_DECREF(arr);
    Py_DECREF(name);
    if (added < 0) {
        return -1;
    }
    *previous_end = offset + length;
    return 1;
}

/* image_arrays(view) -> (image_size, major, minor, checksum, manifest_offset, manifest_length,
 * arrays) or None. ``view``: the image's read-only bytes (a memoryview of unsigned bytes). */
PyObject *msk_image_arrays(PyObject *module, PyObject *view) {
    (void)module;
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    (void)view;
    Py_RETURN_NONE; /* the fields are read in host order; the Python reader serves */
#else
    Py_buffer buf;
    if (PyObject_GetBuffer(view, &buf, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)buf.buf;
    PyObject *result = NULL, *arrays = NULL, *base = NULL;
    Header h;
    if (!read_header(p, (npy_uint64)buf.len, &h)) {
        goto refuse;
    }
    arrays = PyDict_New();
    /* numpy.frombuffer's bytes of the whole image: its base, the memoryview through which it
     * holds an export of ``view`` (which then cannot be released under the views), becomes
     * every array's base, as each frombuffer view has one of its own */
    PyObject *whole = arrays == NULL
                          ? NULL
                          : PyArray_FromBuffer(view, PyArray_DescrFromType(NPY_UINT8), -1, 0);
    if (whole == NULL) {
        goto done;
    }
    base = Py_XNewRef(PyArray_BASE((PyArrayObject *)whole));
    Py_DECREF(whole);
    if (base == NULL) {
        PyErr_SetString(PyExc_SystemError, "numpy.frombuffer gave an array without a base");
        goto done;
    }
    npy_uint64 end = h.manifest_offset + h.manifest_length;
    npy_uint64 previous_end = (end + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
    for (npy_uint32 i = 0; i < h.count; i++) {
        int added = add_array(arrays, base, p, &h, p + HEADER_SIZE + (npy_uint64)i * ENTRY_SIZE,
                              &previous_end);
        if (added < 0) {
            goto done;
        }
        if (added == 0) {
            goto refuse;
        }
    }
    if (h.image_size != (h.count ? previous_end : end)) {
        goto refuse;
    }
    result = Py_BuildValue("(KHHIKIO)", (unsigned long long)h.image_size, h.major, h.minor,
                           h.checksum, (unsigned long long)h.manifest_offset, h.manifest_length,
                           arrays);
    goto done;
refuse:
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(base);
    Py_XDECREF(arrays);
    PyBuffer_Release(&buf);
    return result;
#endif
}

/* IMAGE_FORMAT: the layout and limits above, which the facade compares with _format.py's. */
PyObject *msk_image_format(void) {
    return Py_BuildValue("{s:y#,s:i,s:i,s:i,s:i,s:i,s:K,s:K,s:i,s:K,s:K,s:K}", "MAGIC", MAGIC,
                         (Py_ssize_t)sizeof MAGIC, "VERSION_MAJOR", VERSION_MAJOR, "HEADER_SIZE",
                         HEADER_SIZE, "ENTRY_SIZE", ENTRY_SIZE, "MAX_NDIM", MAX_NDIM, "ALIGNMENT",
                         ALIGNMENT, "MAX_IMAGE_SIZE", (unsigned long long)MAX_IMAGE_SIZE,
                         "MAX_ARRAYS", (unsigned long long)MAX_ARRAYS, "MAX_NAME_LENGTH",
                         MAX_NAME_LENGTH, "MAX_STRINGS_SIZE",
                         (unsigned long long)MAX_STRINGS_SIZE, "MAX_MANIFEST_SIZE",
                         (unsigned long long)MAX_MANIFEST_SIZE, "MAX_DIM",
                         (unsigned long long)MAX_DIM);
}
