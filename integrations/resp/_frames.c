/* The RESP listener's fast lane, compiled: runs of plain GET and SET requests cut straight out
 * of a received chunk, and bulk replies encoded in one buffer.
 *
 * hiredis builds a list of bytes per request and the command loop then looks at each of them in
 * Python; for the two commonest requests of a cache that is most of the cost of a pipelined
 * command. scan_run reads only well-formed frames ("*2\r\n$3\r\nGET\r\n$n\r\n<key>\r\n", and
 * SET's with three elements) and stops before anything else, so the general parser (protocol.py)
 * still sees, and answers, everything unusual: other commands, inline requests, partial frames,
 * frames Redis would reject. Sans-IO: bytes in, arguments out.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum { RUN_NONE = 0, RUN_GET = 1, RUN_SET = 2 };

/* A decimal length as Redis' string2ll reads it (no sign, no leading zeros), terminated by
 * "\r\n"; at most 10 digits. Returns the position after "\r\n", or -1 when the bytes are not
 * that (or not all here yet). */
static Py_ssize_t read_len(const char *s, Py_ssize_t p, Py_ssize_t n, long long *out)
{
    long long v = 0;
    Py_ssize_t start = p;
    while (p < n && s[p] >= '0' && s[p] <= '9') {
        if (p - start >= 10) return -1;
        v = v * 10 + (s[p] - '0');
        p++;
    }
    if (p == start || (s[start] == '0' && p - start > 1)) return -1;
    if (p + 1 >= n || s[p] != '\r' || s[p + 1] != '\n') return -1;
    *out = v;
    return p + 2;
}

/* One bulk string at p: sets *arg and *len, returns the position after its CRLF, or -1. */
static Py_ssize_t read_bulk(const char *s, Py_ssize_t p, Py_ssize_t n, long long max_len,
                            Py_ssize_t *arg, long long *len)
{
    if (p >= n || s[p] != '$') return -1;
    p = read_len(s, p + 1, n, len);
    if (p < 0 || *len > max_len || p + *len + 2 > n) return -1;
    if (s[p + *len] != '\r' || s[p + *len + 1] != '\n') return -1;
    *arg = p;
    return p + *len + 2;
}

static int is_name(const char *s, Py_ssize_t at, long long len, const char *lower)
{
    if (len != 3) return 0;
    for (int i = 0; i < 3; i++)
        if ((s[at + i] | 0x20) != lower[i]) return 0;
    return 1;
}

PyDoc_STRVAR(scan_run_doc,
"scan_run(data, pos, max_len)\n--\n\n"
"The run of plain GET (code 1) or SET (code 2) requests that starts at data[pos], each a whole\n"
"well-formed frame with arguments of at most max_len bytes: (end, code, items), items being the\n"
"keys (GET) or (key, value) pairs (SET). (pos, 0, []) when data[pos:] does not start with one.");

static PyObject *scan_run(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    (void)mod;
    if (nargs != 3 || !PyBytes_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "scan_run(data: bytes, pos: int, max_len: int)");
        return NULL;
    }
    const char *s = PyBytes_AS_STRING(args[0]);
    Py_ssize_t n = PyBytes_GET_SIZE(args[0]);
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    long long max_len = PyLong_AsLongLong(args[2]);
    if (PyErr_Occurred()) return NULL;
    if (pos < 0 || pos > n) {
        PyErr_SetString(PyExc_ValueError, "pos out of range");
        return NULL;
    }
    PyObject *items = PyList_New(0);
    if (!items) return NULL;
    int code = RUN_NONE;
    while (pos < n) {
        Py_ssize_t p = pos;
        if (s[p] != '*' || p + 3 >= n || s[p + 2] != '\r' || s[p + 3] != '\n') break;
        int argc = s[p + 1] - '0';
        if (argc != 2 && argc != 3) break;
        p += 4;
        Py_ssize_t name, key, value = 0;
        long long name_len, key_len, value_len = 0;
        p = read_bulk(s, p, n, max_len, &name, &name_len);
        if (p < 0) break;
        int this_code = argc == 2 && is_name(s, name, name_len, "get")   ? RUN_GET
                        : argc == 3 && is_name(s, name, name_len, "set") ? RUN_SET
                                                                        : RUN_NONE;
        if (this_code == RUN_NONE || (code != RUN_NONE && this_code != code)) break;
        p = read_bulk(s, p, n, max_len, &key, &key_len);
        if (p < 0) break;
        if (argc == 3) {
            p = read_bulk(s, p, n, max_len, &value, &value_len);
            if (p < 0) break;
        }
        PyObject *item = PyBytes_FromStringAndSize(s + key, (Py_ssize_t)key_len);
        if (item && argc == 3) {
            PyObject *v = PyBytes_FromStringAndSize(s + value, (Py_ssize_t)value_len);
            PyObject *pair = v ? PyTuple_Pack(2, item, v) : NULL;
            Py_XDECREF(v);
            Py_DECREF(item);
            item = pair;
        }
        if (!item || PyList_Append(items, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(items);
            return NULL;
        }
        Py_DECREF(item);
        code = this_code;
        pos = p;
    }
    return Py_BuildValue("(niN)", pos, code, items);
}

static int digits_of(Py_ssize_t x)
{
    int d = 1;
    while (x >= 10) {
        x /= 10;
        d++;
    }
    return d;
}

PyDoc_STRVAR(bulk_replies_doc,
"bulk_replies(values, nil)\n--\n\n"
"The replies to a run of GETs in one buffer: each bytes value as a bulk string, None as nil\n"
"(the protocol's null reply, given as bytes).");

static PyObject *bulk_replies(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    (void)mod;
    if (nargs != 2 || !PyList_CheckExact(args[0]) || !PyBytes_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "bulk_replies(values: list, nil: bytes)");
        return NULL;
    }
    PyObject *values = args[0];
    Py_ssize_t count = PyList_GET_SIZE(values), nil_len = PyBytes_GET_SIZE(args[1]);
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *v = PyList_GET_ITEM(values, i);
        if (v == Py_None) {
            total += nil_len;
        } else if (PyBytes_CheckExact(v)) {
            total += PyBytes_GET_SIZE(v) + digits_of(PyBytes_GET_SIZE(v)) + 5; /* $ CRLF CRLF */
        } else {
            PyErr_SetString(PyExc_TypeError, "values must be bytes or None");
            return NULL;
        }
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, total);
    if (!out) return NULL;
    char *w = PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *v = PyList_GET_ITEM(values, i);
        if (v == Py_None) {
            memcpy(w, PyBytes_AS_STRING(args[1]), (size_t)nil_len);
            w += nil_len;
            continue;
        }
        Py_ssize_t len = PyBytes_GET_SIZE(v);
        char digits[24];
        int d = 0;
        Py_ssize_t x = len;
        do {
            digits[d++] = (char)('0' + x % 10);
            x /= 10;
        } while (x);
        *w++ = '$';
        while (d) *w++ = digits[--d];
        *w++ = '\r';
        *w++ = '\n';
        memcpy(w, PyBytes_AS_STRING(v), (size_t)len);
        w += len;
        *w++ = '\r';
        *w++ = '\n';
    }
    return out;
}

static PyMethodDef methods[] = {
    {"scan_run", (PyCFunction)(void (*)(void))scan_run, METH_FASTCALL, scan_run_doc},
    {"bulk_replies", (PyCFunction)(void (*)(void))bulk_replies, METH_FASTCALL, bulk_replies_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_frames",
    "The RESP listener's fast lane: runs of plain GET / SET frames, bulk replies.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__frames(void) { return PyModule_Create(&module); }
