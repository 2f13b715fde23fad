/* The RESP listener's fast lane, compiled: runs of plain GET, SET, INCR and MSET requests cut
 * straight out of a received chunk, and bulk replies encoded in one buffer.
 *
 * hiredis builds a list of bytes per request and the command loop then looks at each of them in
 * Python; for the commonest requests of a cache that is most of the cost of a pipelined command.
 * scan_run reads only whole, well-formed frames ("*2\r\n$3\r\nGET\r\n$n\r\n<key>\r\n" and the
 * like) and stops before anything else, so the general parser (protocol.py) still sees, and
 * answers, everything unusual: other commands, inline requests, partial frames, frames Redis
 * would reject. Sans-IO: bytes in, arguments out.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum { RUN_NONE = 0, RUN_GET = 1, RUN_SET = 2, RUN_INCR = 3, RUN_MSET = 4 };

/* Longer MSETs take the general path (redis-benchmark's has 21 elements). */
#define MAX_MSET_ARGS 65

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
    if (len != (long long)strlen(lower)) return 0;
    for (long long i = 0; i < len; i++)
        if ((s[at + i] | 0x20) != lower[i]) return 0;
    return 1;
}

/* The run code of a request named s[at:at+len] with argc elements, RUN_NONE for any other. */
static int run_code(const char *s, Py_ssize_t at, long long len, long long argc)
{
    if (argc == 2 && is_name(s, at, len, "get")) return RUN_GET;
    if (argc == 3 && is_name(s, at, len, "set")) return RUN_SET;
    if (argc == 2 && is_name(s, at, len, "incr")) return RUN_INCR;
    if (argc >= 3 && argc % 2 == 1 && argc <= MAX_MSET_ARGS && is_name(s, at, len, "mset"))
        return RUN_MSET;
    return RUN_NONE;
}

/* Appends s[a:a+alen] (and, when pair, s[b:b+blen] as a (key, value) tuple) to items. */
static int append_item(PyObject *items, const char *s, Py_ssize_t a, long long alen, int pair,
                       Py_ssize_t b, long long blen)
{
    PyObject *item = PyBytes_FromStringAndSize(s + a, (Py_ssize_t)alen);
    if (item && pair) {
        PyObject *v = PyBytes_FromStringAndSize(s + b, (Py_ssize_t)blen);
        PyObject *t = v ? PyTuple_Pack(2, item, v) : NULL;
        Py_XDECREF(v);
        Py_DECREF(item);
        item = t;
    }
    if (!item) return -1;
    int rc = PyList_Append(items, item);
    Py_DECREF(item);
    return rc;
}

PyDoc_STRVAR(scan_run_doc,
"scan_run(data, pos, max_len)\n--\n\n"
"The run of plain requests of one kind that starts at data[pos], each a whole well-formed\n"
"frame with arguments of at most max_len bytes: GET key (code 1), SET key value (2), INCR key\n"
"(3) or MSET key value... (4). Returns (end, code, requests, items): items are the keys (GET,\n"
"INCR) or the (key, value) pairs (SET, MSET) of the run's requests, in order. (pos, 0, 0, [])\n"
"when data[pos:] does not start with such a request.");

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
    Py_ssize_t requests = 0;
    while (pos < n) {
        /* Read the whole frame before taking anything from it: a frame that is not complete
         * (or not plain) is left whole to the general parser. */
        Py_ssize_t p = pos;
        long long argc, name_len;
        Py_ssize_t name;
        if (s[p] != '*') break;
        p = read_len(s, p + 1, n, &argc);
        if (p < 0) break;
        p = read_bulk(s, p, n, max_len, &name, &name_len);
        if (p < 0) break;
        int this_code = run_code(s, name, name_len, argc);
        if (this_code == RUN_NONE || (code != RUN_NONE && this_code != code)) break;
        Py_ssize_t at[MAX_MSET_ARGS];
        long long len[MAX_MSET_ARGS];
        long long i = 1;
        for (; i < argc; i++) {
            p = read_bulk(s, p, n, max_len, &at[i], &len[i]);
            if (p < 0) break;
        }
        if (i < argc) break;
        int pair = this_code == RUN_SET || this_code == RUN_MSET;
        for (i = 1; i < argc; i += pair ? 2 : 1) {
            if (append_item(items, s, at[i], len[i], pair, pair ? at[i + 1] : 0,
                            pair ? len[i + 1] : 0) < 0) {
                Py_DECREF(items);
                return NULL;
            }
        }
        code = this_code;
        requests++;
        pos = p;
    }
    return Py_BuildValue("(ninN)", pos, code, requests, items);
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
    "The RESP listener's fast lane: runs of plain GET / SET / INCR / MSET frames, bulk replies.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__frames(void) { return PyModule_Create(&module); }
