"""``modelshelf compile`` and ``modelshelf inspect``: making image files and looking inside them.

``compile`` is publisher-side (it needs the ``convert`` extra): a joblib pickle (which it
unpickles, so a trusted file only) or a ``.safetensors`` file (a tensor bundle; never executes
anything). ``inspect`` reads any image with numpy alone and never unpickles.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

from ..errors import BadMagicError, ChecksumError, ImageError, MissingDependencyError
from ..image import MAGIC, Image
from ..image._manifest import source_date_epoch
from ..model import Model
from ..runtime import METHODS
from ._output import UsageError, emit, size

_COMPILE_HELP = """\
Compile a fitted estimator saved with joblib (or pickle), or a .safetensors file (a bundle of
tensors, read without executing anything), into an image file.

WARNING: loading a joblib/pickle file EXECUTES the code it contains. Compile only files that
come from a trusted source (your own training job), on the publisher's machine. The image it
writes holds only arrays and JSON: loading an image never executes anything.
"""

_SHOWN_LABELS = 20  # classes and feature names listed in the text report; --json lists all


def add_commands(sub: Any) -> None:
    """Register ``compile`` and ``inspect`` on the CLI's subparsers."""
    p = sub.add_parser(
        "compile",
        help="compile a joblib-pickled estimator (executes the pickle: trusted files only) or a "
        ".safetensors file into an image",
        description=_COMPILE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "model", metavar="MODEL.joblib",
        help="a fitted estimator saved by joblib.dump, or a .safetensors file",
    )  # fmt: skip
    p.add_argument(
        "-o", "--output", required=True, metavar="MODEL.msi",
        help="image to write (replaced atomically; '-' for stdout; a device, or a link of "
        "yours or root's, is written to or through, never replaced)",
    )  # fmt: skip
    p.add_argument("--name", help="model name stored in the image (default: the file's stem)")
    p.add_argument(
        "--meta",
        action="append",
        default=[],
        type=_key_value,
        metavar="KEY=VALUE",
        help="free-form metadata stored in the image; repeat for several pairs",
    )
    p.set_defaults(run=_compile)

    p = sub.add_parser(
        "inspect",
        help="show an image's model, input schema, arrays and metadata; verify its checksum",
        description="Validate an image file and describe it. Exit status 8 if the image is "
        "invalid or its checksum does not match (with --json, the report says MISMATCH).",
    )
    p.add_argument("file", metavar="FILE", help="image file")
    p.set_defaults(run=_inspect)


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    if key == "name":
        raise argparse.ArgumentTypeError("use --name NAME to name the model, not --meta name=...")
    return key, value


def _compile(args: argparse.Namespace) -> int:
    source = Path(args.model)
    metadata = {"name": args.name or text_of(source.stem)}
    for key, value in args.meta:
        if key in metadata:
            raise ValueError(f"metadata key {key!r} given twice")
        metadata[key] = value
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image, what = compile_file(source, metadata)
    said = said_once(caught)
    model = Model(Image(image))  # refuse to write an image this runtime could not load
    if args.output == "-" and args.json:
        raise UsageError("-o - writes the image to stdout, where --json writes its report")
    write_output(args.output, image)
    if args.json:  # the warnings in the document: nothing on stderr
        emit({"source": str(source), "compiled": what, "output": args.output, "kind": model.kind,
              "size": len(image), "arrays": len(model.image.arrays),
              "warnings": said})  # fmt: skip
        return 0
    for line in said:
        print(f"modelshelf compile: warning: {line}", file=sys.stderr)
    print(
        f"{source} ({what}) -> {'stdout' if args.output == '-' else args.output}: "
        f"{model.kind}, {size(len(image))}, {len(model.image.arrays)} arrays",
        file=sys.stderr if args.output == "-" else sys.stdout,  # stdout holds the image
    )
    return 0


def write_output(output: str, data: bytes) -> None:
    """Write the image where ``-o`` says: ``-`` is stdout; a device or FIFO (/dev/null,
    /dev/stdout) is written to, never replaced; a symbolic link of this user's or root's is
    written through (its target replaced, the link kept), another user's refused; a regular
    file is replaced atomically. As root, -o /dev/null
    replaced the device with a file, and -o link.msi the link with one."""
    if output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    path = Path(output)
    if path.is_symlink():
        owner = os.lstat(path).st_uid
        if owner not in (os.geteuid(), 0):
            # another user's link (planted in /tmp, say) would have root's image written over
            # whatever it points at: never followed, as the kernel's protected_symlinks does
            raise PermissionError(
                f"{path} is a symbolic link of uid {owner}, not yours: not followed (another "
                "user could point it at any file); remove it or give another path"
            )
    try:
        st = os.stat(path)  # through links
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(f"{path}: a directory; give the image's file name")
    if st is not None and not stat.S_ISREG(st.st_mode):
        with open(path, "wb") as fh:  # a device, a FIFO, a terminal: as it is
            fh.write(data)
        return
    _write_atomically(Path(os.path.realpath(path)) if path.is_symlink() else path, data)


def text_of(name: str) -> str:
    """A file name as text an image's manifest can hold: bytes that are not UTF-8 (decoded as
    surrogates) become U+FFFD. Such a name was refused as 'not valid Unicode'."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def said_once(caught: list[warnings.WarningMessage]) -> list[str]:
    """Warnings raised while loading and compiling (a pickle from another scikit-learn
    version), each once, on one line."""
    lines = (
        f"{w.category.__name__}: {(str(w.message).strip().splitlines() or [''])[0]}" for w in caught
    )
    return list(dict.fromkeys(lines))


def is_safetensors(path: Path) -> bool:
    """A .safetensors file: by its suffix, or by its start (an 8-byte header length, then a
    JSON object)."""
    if path.suffix == ".safetensors":
        return True
    with open(path, "rb") as fh:
        head = fh.read(9)
    return len(head) == 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") < 1e8


def check_model_file(path: Path) -> None:
    """Refuse what is not a regular file, saying what it is (a missing file, a directory, a
    FIFO or a device: "no such file" said the wrong thing of the last two)."""
    if path.is_dir():
        raise IsADirectoryError(f"{path}: a directory, not a model file")
    if path.is_file():
        return
    if path.exists():
        raise ValueError(
            f"{path}: not a regular file (a FIFO, a socket or a device): give an image, a "
            ".safetensors file or a joblib pickle"
        )
    raise FileNotFoundError(f"{path}: no such file")


def compile_file(source: Path, metadata: dict[str, str]) -> tuple[bytes, str]:
    """Compile a .safetensors file or a joblib pickle into image bytes; also say what it was.
    A file named as an image (.msi) is never unpickled: one that is not an image is corrupt,
    or not what its name says (a pickle renamed .msi runs its code when loaded)."""
    check_model_file(source)
    if source.stat().st_size == 0:
        raise ValueError(f"{source}: an empty file, not a model")
    with open(source, "rb") as fh:
        if fh.read(len(MAGIC)) == MAGIC:
            raise ValueError(
                f"{source} is an image already: nothing to compile (modelshelf inspect "
                "describes it, modelshelf publish publishes it as it is)"
            )
    source_date_epoch()  # malformed, it made a library fail inside the unpickling: said first
    if source.suffix.lower() == ".msi":
        raise BadMagicError(
            f"{source}: named as an image (.msi) but it does not start with an image's magic "
            f"{MAGIC!r}: corrupt, or not an image; it was not unpickled (a pickled estimator "
            "to compile goes by its own name: .joblib, .pkl)"
        )
    from .. import compile as compile_image
    from .. import compile_tensors

    if is_safetensors(source):
        return compile_tensors(source, metadata=metadata), "safetensors"
    estimator = _unpickle(source)
    what = f"{type(estimator).__module__}.{type(estimator).__qualname__}"
    return compile_image(estimator, metadata=metadata), what


def _unpickle(path: Path) -> Any:
    try:
        import joblib
    except ImportError as exc:
        raise MissingDependencyError(
            f"compiling needs the 'convert' extra (pip install 'modelshelf[convert]'): {exc}"
        ) from exc
    check_model_file(path)
    try:
        return joblib.load(path)
    except Exception as exc:  # unpickling can raise anything; report it on one line
        raise ValueError(f"cannot load {path} with joblib: {type(exc).__name__}: {exc}") from exc


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; an image holds no secret of its own
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _inspect(args: argparse.Namespace) -> int:
    try:
        image = Image.open(args.file)
        try:
            image.verify()
            checksum_ok = True
        except ChecksumError:
            checksum_ok = False
        report = {"file": str(args.file), **describe(image, checksum_ok=checksum_ok)}
    except ImageError as exc:
        raise type(exc)(f"{args.file}: {exc}") from exc
    if args.json:
        emit(report)
    else:
        _print_report(report)
    if not checksum_ok:
        print(
            f"modelshelf inspect: error: {args.file}: checksum MISMATCH, the image is corrupted",
            file=sys.stderr,
        )
        return ChecksumError.exit_status
    return 0


def describe(image: Image, *, checksum_ok: bool) -> dict[str, Any]:
    """A JSON-ready description of ``image``. Raises ModelshelfError if no Model can be built
    from it (an unknown kind, a malformed spec): such an image is invalid for this reader."""
    model = Model(image)
    manifest = image.manifest
    classes = _classes(model)
    methods = [m for m in METHODS if hasattr(model, m)]
    arrays = [
        {
            "name": name,
            "dtype": str(arr.dtype),
            "shape": list(arr.shape),
            "bytes": int(arr.nbytes),
        }
        for name, arr in image.arrays.items()
    ]
    verdict = "OK" if checksum_ok else "MISMATCH"
    return {
        "size": image.size,
        "format_version": f"{image.version[0]}.{image.version[1]}",
        "checksum": {"crc32": f"{image.checksum:#010x}", "verdict": verdict},
        "kind": model.kind,
        "methods": methods,
        "input": manifest.get("input"),
        "classes": classes,
        "metadata": manifest["metadata"],
        "arrays": arrays,
        "array_bytes": sum(a["bytes"] for a in arrays),
    }


def _classes(model: Model) -> list[Any] | None:
    try:
        classes = model.classes_
    except AttributeError:
        return None
    if isinstance(classes, list):  # multi-output: one label array per output
        return [c.tolist() for c in classes]
    return list(classes.tolist())


def _print_report(r: dict[str, Any]) -> None:
    schema = r["input"] or {}
    out = [
        f"file:      {r['file']}",
        f"size:      {r['size']:,} bytes (format {r['format_version']})",
        f"checksum:  {r['checksum']['verdict']} (crc32 {r['checksum']['crc32']})",
        f"kind:      {r['kind']}",
        f"methods:   {', '.join(r['methods']) or '(none: a tensor bundle)'}",
        f"input:     {_describe_input(schema)}",
    ]
    names = schema.get("feature_names")
    if names:
        out.append(f"features:  {_listing(names)}")
    if r["classes"] is not None:
        out.append(f"classes:   {_listing(r['classes'])}")
    out.append("metadata:")
    for key, value in sorted(r["metadata"].items()):
        if isinstance(value, dict):
            for sub_key, sub_value in sorted(value.items()):
                out.append(f"  {key}.{sub_key}: {sub_value}")
        else:
            out.append(f"  {key}: {value}")
    out.append(f"arrays:    {len(r['arrays'])}, {r['array_bytes']:,} bytes")
    if r["arrays"]:
        width = max(len(a["name"]) for a in r["arrays"])
        for a in r["arrays"]:
            shape = "x".join(map(str, a["shape"])) or "scalar"
            out.append(f"  {a['name']:<{width}}  {a['dtype']:<8} {shape:<14} {a['bytes']:>12,} B")
    print("\n".join(out))


def _describe_input(schema: dict[str, Any]) -> str:
    kind = schema.get("type", "numeric")
    n = schema.get("n_features")
    if kind == "numeric":
        return f"numeric, {n} features" if n is not None else "numeric, any number of features"
    if kind == "text":
        return "text, a sequence of documents (str or bytes)"
    if kind == "tabular":
        tables = schema.get("categories")
        if tables is None:
            return f"tabular, {n} features, numbers and strings (encoded by the model)"
        count = len(tables) if isinstance(tables, list) else 0
        return f"tabular, {n} features, {count} categorical (a DataFrame's categories recoded)"
    return str(kind)


def _listing(values: list[Any]) -> str:
    shown = ", ".join(map(str, values[:_SHOWN_LABELS]))
    more = len(values) - _SHOWN_LABELS
    return f"{shown}, ... ({len(values)} in all)" if more > 0 else shown
