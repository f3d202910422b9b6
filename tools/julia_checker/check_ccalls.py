#!/usr/bin/env python3
"""Checks a Julia ccall wrapper against a C header and a built shared library, without Julia.

    python3 tools/julia_checker/check_ccalls.py --header include/lre.h \
        --library target/debug/liblre.so bindings/julia/LRE examples/julia

The header is parsed with libclang and every .jl file (directories are searched) with
tree-sitter-julia. Checked:
  - every `ccall((:sym, lib), Ret, (T1, ...), args...)`: `lib` is the wrapper's library constant,
    `sym` is declared in the header and exported by the library (nm -D), the number of argument
    types equals the C parameter count and the number of values passed, and the return type
    and each argument type map to the C types (Cint/Int32 <-> int32_t, Csize_t <-> size_t,
    Cstring <-> const char *, Ptr{T}/Ref{T} <-> T *, Ptr{Cvoid} <-> opaque handles, void * and
    function pointers, ...);
  - every `ccall(fptr, Ret, (T...), ...)` through a function pointer and every
    `@cfunction(f, Ret, (T...))`: the signature is one of the header's callback typedefs;
  - every `const NAME = value` whose NAME is a header enum constant or integer macro has its value;
  - no ccall passes a function's parameter declared as a strided or abstract array (a view such
    as x[1:2:end] is not one block of memory) to C as it is; it must go through a contiguous copy;
  - every package (a directory with a Project.toml) has a [compat] entry for julia and for each of
    its [deps], and each module its src/ uses or imports is Base, Core or one of its [deps];
  - the files parse (tree-sitter reports no syntax error), and `@ccall` is refused (its form is
    not checked here; write ccall).
Prints one line per problem ("file:line: ...") and a summary; exits 1 if there was a problem,
2 if the tools are missing (`pip install -r requirements.txt` beside this file; tests/julia_checker.rs
installs them into a virtual environment under target/tmp).
"""

import argparse
import difflib
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

try:
    import clang.cindex as ci
    import tree_sitter
    import tree_sitter_julia
except ImportError as e:
    sys.exit(
        f"check_ccalls.py: {e}; install the pinned tools with "
        f"`python3 -m pip install -r {Path(__file__).with_name('requirements.txt')}` (in a virtual environment)"
    )

# C integer typedefs and builtins -> the Julia type (after aliases, below) that matches them.
C_TYPEDEFS = {
    "size_t": "Csize_t", "ssize_t": "Cssize_t", "ptrdiff_t": "Cptrdiff_t",
    "int8_t": "Int8", "uint8_t": "UInt8", "int16_t": "Int16", "uint16_t": "UInt16",
    "int32_t": "Int32", "uint32_t": "UInt32", "int64_t": "Int64", "uint64_t": "UInt64",
}
C_BUILTINS = {
    ci.TypeKind.VOID: "Cvoid", ci.TypeKind.BOOL: "Bool",
    ci.TypeKind.FLOAT: "Float32", ci.TypeKind.DOUBLE: "Float64",
    ci.TypeKind.CHAR_S: "Cchar", ci.TypeKind.SCHAR: "Int8", ci.TypeKind.UCHAR: "UInt8",
    ci.TypeKind.SHORT: "Int16", ci.TypeKind.USHORT: "UInt16",
    ci.TypeKind.INT: "Int32", ci.TypeKind.UINT: "UInt32",
    ci.TypeKind.LONGLONG: "Int64", ci.TypeKind.ULONGLONG: "UInt64",
}
# Julia aliases -> one spelling (x86-64 Linux, the platform the library is built for).
JULIA_ALIASES = {
    "Cint": "Int32", "Cuint": "UInt32", "Cshort": "Int16", "Cushort": "UInt16",
    "Clonglong": "Int64", "Culonglong": "UInt64", "Cfloat": "Float32", "Cdouble": "Float64",
    "Cuchar": "UInt8", "Nothing": "Cvoid",
}
# Array types whose values need not be contiguous in memory (a C pointer sees one block).
NONCONTIGUOUS_ARRAYS = {
    "AbstractArray", "AbstractVector", "AbstractMatrix", "AbstractVecOrMat",
    "StridedArray", "StridedVector", "StridedMatrix", "StridedVecOrMat", "SubArray",
}


@dataclass
class Signature:
    """A C function or function-pointer type as the Julia spellings each position accepts."""

    ret: set
    args: list  # one set per parameter
    text: str  # the C declaration, for messages


@dataclass
class Header:
    functions: dict = field(default_factory=dict)  # name -> Signature
    callbacks: dict = field(default_factory=dict)  # typedef name -> Signature
    constants: dict = field(default_factory=dict)  # enum constant or integer macro -> value


def desugar(t):
    """Follows typedefs down to a C_TYPEDEFS name, a pointer (its pointee keeps its typedef
    name: size_t * must stay size_t *, not unsigned long *) or a canonical type."""
    while True:
        if t.kind == ci.TypeKind.ELABORATED:
            t = t.get_named_type()
        elif t.kind == ci.TypeKind.TYPEDEF and t.get_declaration().spelling not in C_TYPEDEFS:
            t = t.get_declaration().underlying_typedef_type
        else:
            return t if t.kind in (ci.TypeKind.TYPEDEF, ci.TypeKind.POINTER) else t.get_canonical()


def julia_spellings(t, returned=False):
    """The normalized Julia types that pass a value of C type `t` correctly."""
    t = desugar(t)
    if t.kind == ci.TypeKind.TYPEDEF:
        return {C_TYPEDEFS[t.get_declaration().spelling]}
    if t.kind == ci.TypeKind.POINTER:
        pointee = t.get_pointee()
        target = pointee.get_canonical()
        if target.kind in (ci.TypeKind.FUNCTIONPROTO, ci.TypeKind.RECORD, ci.TypeKind.VOID):
            return {"Ptr{Cvoid}"}
        if target.kind in (ci.TypeKind.CHAR_S, ci.TypeKind.SCHAR, ci.TypeKind.UCHAR):
            chars = {"Ptr{UInt8}", "Ptr{Cchar}"}
            return chars | {"Cstring"} if target.is_const_qualified() else chars
        inner = julia_spellings(pointee)
        wrappers = ("Ptr",) if returned else ("Ptr", "Ref")
        return {f"{w}{{{j}}}" for w in wrappers for j in inner}
    if t.kind == ci.TypeKind.ENUM:
        return julia_spellings(t.get_declaration().enum_type)
    if t.kind in C_BUILTINS:
        return {C_BUILTINS[t.kind]}
    return {f"<C type {t.spelling} has no Julia mapping here>"}


def signature(result_type, arg_types, text):
    return Signature(
        ret=julia_spellings(result_type, returned=True),
        args=[julia_spellings(a) for a in arg_types],
        text=text,
    )


def parse_header(path):
    include = subprocess.run(
        ["gcc", "-print-file-name=include"], capture_output=True, text=True, check=True
    ).stdout.strip()
    tu = ci.Index.create().parse(
        str(path),
        # gcc's stddef.h: the libclang wheel has no resource directory, and without it size_t
        # would silently become int.
        args=["-x", "c", "-std=c11", "-isystem", include],
        options=ci.TranslationUnit.PARSE_DETAILED_PROCESSING_RECORD,
    )
    errors = [str(d) for d in tu.diagnostics if d.severity >= ci.Diagnostic.Error]
    if errors:
        sys.exit(f"check_ccalls.py: {path} does not parse:\n" + "\n".join(errors))
    header = Header()
    for c in tu.cursor.get_children():
        if c.location.file is None or Path(c.location.file.name).resolve() != path.resolve():
            continue
        if c.kind == ci.CursorKind.FUNCTION_DECL:
            args = ", ".join(f"{a.type.spelling} {a.spelling}" for a in c.get_arguments())
            header.functions[c.spelling] = signature(
                c.result_type,
                [a.type for a in c.get_arguments()],
                f"{c.result_type.spelling} {c.spelling}({args})",
            )
        elif c.kind == ci.CursorKind.TYPEDEF_DECL:
            target = desugar(c.underlying_typedef_type)
            if target.kind == ci.TypeKind.POINTER:
                proto = target.get_pointee()
                if proto.kind == ci.TypeKind.FUNCTIONPROTO:
                    header.callbacks[c.spelling] = signature(
                        proto.get_result(),
                        list(proto.argument_types()),
                        f"{c.spelling} = {c.underlying_typedef_type.spelling}",
                    )
        elif c.kind == ci.CursorKind.ENUM_DECL:
            for e in c.get_children():
                header.constants[e.spelling] = e.enum_value
        elif c.kind == ci.CursorKind.MACRO_DEFINITION:
            tokens = [t.spelling for t in c.get_tokens()]
            if len(tokens) == 2 and tokens[1].isdigit():
                header.constants[tokens[0]] = int(tokens[1])
    return header


def exported_symbols(library):
    out = subprocess.run(
        ["nm", "-D", "--defined-only", str(library)], capture_output=True, text=True, check=True
    ).stdout
    return {parts[2] for parts in (line.split() for line in out.splitlines()) if len(parts) == 3}


def julia_type(node):
    """A Julia type expression as one normalized spelling: Ptr{Cint} -> "Ptr{Int32}"."""
    if node.type == "identifier":
        name = node.text.decode()
        return JULIA_ALIASES.get(name, name)
    if node.type == "parametrized_type_expression":
        name, curly = node.named_children
        params = ",".join(julia_type(p) for p in curly.named_children)
        return f"{julia_type(name)}{{{params}}}"
    return node.text.decode()


class Checker:
    def __init__(self, header, exports, header_name, library_var):
        self.header = header
        self.exports = exports
        self.header_name = header_name
        self.library_var = library_var
        self.problems = []
        self.counts = {"ccall": 0, "cfunction": 0, "constant": 0, "project": 0}
        self.called = set()
        self.parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_julia.language()))

    def problem(self, path, node, message):
        self.problem_at(path, node.start_point[0] + 1, message)

    def problem_at(self, path, line, message):
        self.problems.append(f"{path}:{line}: {message}")

    def check_file(self, path):
        tree = self.parser.parse(path.read_bytes())
        if tree.root_node.has_error:
            # After an error the tree is a guess: report the first one and check nothing else.
            error = first_error(tree.root_node)
            self.problem(path, error, f"syntax error at {error.text.decode()[:40]!r}; not checked further")
            return
        self.walk(path, tree.root_node, {})

    def walk(self, path, node, arrays):
        """`arrays`: the enclosing function's parameters declared as non-contiguous arrays."""
        params = function_parameters(node)
        if params is not None:
            arrays = {name: t for name, t in params.items() if t in NONCONTIGUOUS_ARRAYS}
        if node.type == "call_expression":
            callee = node.named_children[0]
            if callee.type == "identifier" and callee.text == b"ccall":
                self.check_ccall(path, node, node.named_children[1].named_children, arrays)
        elif node.type == "macrocall_expression":
            name = node.named_children[0].text.decode()
            if name == "@ccall":
                self.problem(path, node, "@ccall is not checked by this tool; write ccall((:sym, lib), ...)")
            elif name == "@cfunction":
                self.check_cfunction(path, node, node.named_children[1].named_children)
        elif node.type == "const_statement":
            self.check_constant(path, node)
        for child in node.named_children:
            self.walk(path, child, arrays)

    def types_of(self, path, node, what):
        # `(Ptr{Cvoid})` is not a tuple: one type needs the trailing comma, `(Ptr{Cvoid},)`.
        if node.type != "tuple_expression":
            self.problem(path, node, f"{what}: the argument types must be a literal tuple, got {node.text.decode()!r}")
            return None
        return [julia_type(t) for t in node.named_children]

    def check_ccall(self, path, node, args, arrays):
        self.counts["ccall"] += 1
        if len(args) < 3:
            self.problem(path, node, "ccall needs (function, return type, argument types, values...)")
            return
        target, ret, types_node, values = args[0], args[1], args[2], args[3:]
        for value in values:
            name = value.text.decode()
            if value.type == "identifier" and name in arrays:
                self.problem(path, value, f"ccall passes {name}::{arrays[name]} to C as it is, but it need "
                             "not be contiguous; pass a contiguous array (e.g. through with_contiguous)")
        types = self.types_of(path, types_node, "ccall")
        if types is None:
            return
        if len(values) != len(types):
            self.problem(path, node, f"ccall passes {len(values)} values for {len(types)} argument types")
        if target.type in ("quote_expression", "string_literal"):
            self.problem(path, target, f"ccall target {target.text.decode()} names no library; "
                         f"write (:symbol, {self.library_var})")
            return
        if target.type != "tuple_expression":
            # A call through a function pointer: it must have a callback type of the header.
            self.check_callback(path, node, f"ccall through {target.text.decode()}", julia_type(ret), types)
            return
        parts = target.named_children
        if len(parts) != 2 or parts[0].type != "quote_expression":
            self.problem(path, target, f"ccall target {target.text.decode()!r} is not (:symbol, {self.library_var})")
            return
        symbol = parts[0].named_children[0].text.decode()
        self.called.add(symbol)
        if parts[1].text.decode() != self.library_var:
            self.problem(path, parts[1], f"{symbol}: called in {parts[1].text.decode()!r}, not {self.library_var}")
        sig = self.header.functions.get(symbol)
        if sig is None:
            near = difflib.get_close_matches(symbol, self.header.functions, n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            self.problem(path, node, f"{symbol} is not declared in {self.header_name}{hint}")
            return
        if symbol not in self.exports:
            self.problem(path, node, f"{symbol} is not exported by the library")
        self.compare(path, node, symbol, sig, julia_type(ret), types)

    def compare(self, path, node, name, sig, ret, types):
        """Reports every position where the Julia types differ from `sig`."""
        if len(types) != len(sig.args):
            self.problem(path, node, f"{name}: {len(types)} argument types, but the C function takes "
                         f"{len(sig.args)}: {sig.text}")
            return
        if ret not in sig.ret:
            self.problem(path, node, f"{name}: return type {ret}, expected {' or '.join(sorted(sig.ret))}: {sig.text}")
        for i, (got, want) in enumerate(zip(types, sig.args), 1):
            if got not in want:
                self.problem(path, node, f"{name}: argument {i} is {got}, expected {' or '.join(sorted(want))}: {sig.text}")

    def check_callback(self, path, node, what, ret, types):
        for sig in self.header.callbacks.values():
            if len(types) == len(sig.args) and ret in sig.ret and all(
                t in w for t, w in zip(types, sig.args)
            ):
                return
        known = "; ".join(s.text for s in self.header.callbacks.values())
        self.problem(path, node, f"{what}: ({', '.join(types)}) -> {ret} matches no callback type of "
                     f"{self.header_name} ({known})")

    def check_cfunction(self, path, node, args):
        self.counts["cfunction"] += 1
        if len(args) != 3:
            self.problem(path, node, "@cfunction needs (function, return type, argument types)")
            return
        types = self.types_of(path, args[2], "@cfunction")
        if types is not None:
            self.check_callback(path, node, f"@cfunction({args[0].text.decode()})", julia_type(args[1]), types)

    def check_constant(self, path, node):
        assignment = node.named_children[0]
        if assignment.type != "assignment":
            return
        name_node, value_node = assignment.named_children[0], assignment.named_children[-1]
        name = name_node.text.decode()
        if name not in self.header.constants:
            return
        self.counts["constant"] += 1
        # `3` or a conversion such as `Int32(3)`.
        if value_node.type == "call_expression":
            value_node = value_node.named_children[1].named_children[0]
        try:
            value = int(value_node.text.decode(), 0)
        except ValueError:
            self.problem(path, node, f"{name}: value {value_node.text.decode()!r} is not an integer literal")
            return
        if value != self.header.constants[name]:
            self.problem(path, node, f"{name} = {value}, but {self.header_name} says {self.header.constants[name]}")


    def check_project(self, project):
        """The package's Project.toml: compat entries, and the modules its src/ loads."""
        self.counts["project"] += 1
        text = project.read_text()
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            self.problem_at(project, 1, f"does not parse: {e}")
            return
        deps, compat = data.get("deps", {}), data.get("compat", {})
        lines = text.splitlines()
        if "julia" not in compat:
            self.problem_at(project, toml_line(lines, "compat"), "[compat] has no julia entry")
        for name in deps:
            if name not in compat:
                self.problem_at(project, toml_line(lines, "deps", name), f"{name} has no [compat] entry")
        known = set(deps) | {"Base", "Core", data.get("name")}
        for source in sorted((project.parent / "src").rglob("*.jl")):
            tree = self.parser.parse(source.read_bytes())
            for node, module in loaded_modules(tree.root_node):
                if module not in known:
                    self.problem(source, node, f"{module} is not in the [deps] of {project}")


def function_parameters(node):
    """{name: type name} of the parameters of a function definition (long or short form), or
    None if `node` defines no function."""
    if node.type == "function_definition":
        signature = next((c for c in node.named_children if c.type == "signature"), None)
        call = signature.named_children[0] if signature is not None and signature.named_children else None
    elif node.type == "assignment" and node.named_children[0].type in ("call_expression", "where_expression"):
        call = node.named_children[0]
    else:
        return None
    while call is not None and call.type == "where_expression":
        call = call.named_children[0]
    if call is None or call.type != "call_expression" or len(call.named_children) < 2:
        return {}
    params = {}
    for p in call.named_children[1].named_children:
        if p.type == "typed_expression" and len(p.named_children) == 2:
            name, declared = p.named_children
            if declared.type == "parametrized_type_expression":
                declared = declared.named_children[0]
            params[name.text.decode()] = declared.text.decode()
    return params


def loaded_modules(node):
    """(node, top-level module name) of every `using`/`import` below `node`; relative ones
    (`using .Sub`) are the package's own and are left out."""
    if node.type in ("using_statement", "import_statement"):
        for clause in node.named_children:
            first = clause.named_children[0] if clause.type == "selected_import" else clause
            name = first.text.decode()
            if not name.startswith("."):
                yield first, name.split(".")[0]
        return
    for child in node.named_children:
        yield from loaded_modules(child)


def toml_line(lines, table, key=None):
    """The 1-based line of `[table]` (or of `key` in it) in a TOML file's lines; 1 if absent."""
    header = next((i for i, l in enumerate(lines) if l.strip().startswith(f"[{table}]")), None)
    if header is None:
        return 1
    if key is not None:
        for i in range(header + 1, len(lines)):
            stripped = lines[i].strip()
            if stripped.startswith("["):
                break
            if stripped.split("=")[0].strip() == key:
                return i + 1
    return header + 1


def first_error(node):
    if node.type == "ERROR" or node.is_missing:
        return node
    for child in node.children:
        if child.has_error or child.is_missing:
            return first_error(child)
    return node


def julia_files(paths):
    for p in paths:
        if p.is_dir():
            yield from sorted(p.rglob("*.jl"))
        elif p.is_file():
            yield p
        else:
            sys.exit(f"check_ccalls.py: {p} does not exist")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--header", type=Path, required=True, help="the C header (lre.h)")
    ap.add_argument("--library", type=Path, required=True, help="the built shared library")
    ap.add_argument("--library-var", default="libLRE", help="the Julia constant naming the library")
    ap.add_argument("paths", type=Path, nargs="+", help=".jl files or directories")
    opts = ap.parse_args()

    checker = Checker(parse_header(opts.header), exported_symbols(opts.library),
                      opts.header.name, opts.library_var)
    files = list(julia_files(opts.paths))
    for f in files:
        checker.check_file(f)
    for project in sorted(p for d in opts.paths if d.is_dir() for p in d.rglob("Project.toml")):
        checker.check_project(project)
    for p in checker.problems:
        print(p)
    unbound = sorted(set(checker.header.functions) - checker.called)
    if unbound:
        print(f"note: not called from Julia: {', '.join(unbound)}")
    c = checker.counts
    print(f"julia ccall check: {c['ccall']} ccalls, {c['cfunction']} @cfunctions, {c['constant']} "
          f"constants in {len(files)} files and {c['project']} Project.toml; {len(checker.problems)} problems")
    return 1 if checker.problems else 0


if __name__ == "__main__":
    sys.exit(main())
