"""Generate Python code and the descriptor set from `protos/` into `generated/`.

    python scripts/gen_protos.py            # regenerate generated/
    python scripts/gen_protos.py --check    # fail if generated/ differs from a fresh run
    python scripts/gen_protos.py --image F  # write only the descriptor set (for buf) to F

Imported protos are assembled at build time into `build/protodeps/` (git-ignored):
`google/api/*.proto` from the installed googleapis-common-protos wheel, and
`buf/validate/validate.proto` as a FileDescriptorSet taken from protovalidate 2.x, which
embeds the file's serialized descriptor in its generated module but ships no `.proto`.
`google/**` modules are never emitted: googleapis-common-protos and protobuf own them.
`buf/validate/validate_pb2.py` is emitted, because protovalidate 2.x ships only its own
(protobuf-py) module and our generated code imports the classic one.
"""

from __future__ import annotations

import argparse
import difflib
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc_tools
from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
GENERATED = ROOT / "generated"
DEPS = ROOT / "build" / "protodeps"
VALIDATE_SET = DEPS / "buf_validate.binpb"
VALIDATE_PROTO = "buf/validate/validate.proto"
# Beside the code, inside the `paynow` package, so installed code finds it as package data.
DESCRIPTOR_SET = Path("paynow") / "descriptor_set.binpb"


def assemble_deps() -> None:
    """Put the imported protos where protoc and buf can read them."""
    import google.api  # noqa: PLC0415 - imported here: only this step needs the package
    from protovalidate._gen.buf.validate import validate_pb  # noqa: PLC0415

    api_dir = DEPS / "google" / "api"
    api_dir.mkdir(parents=True, exist_ok=True)
    for source in Path(next(iter(google.api.__path__))).glob("*.proto"):
        shutil.copyfile(source, api_dir / source.name)

    validate_file = descriptor_pb2.FileDescriptorProto.FromString(
        validate_pb.desc().proto.to_binary()
    )
    descriptor_set = descriptor_pb2.FileDescriptorSet(file=[validate_file])
    VALIDATE_SET.write_bytes(descriptor_set.SerializeToString(deterministic=True))


def proto_sources() -> list[str]:
    return sorted(str(path.relative_to(PROTOS)) for path in PROTOS.rglob("*.proto"))


def run_protoc(out_dir: Path) -> None:
    bin_dir = Path(sys.executable).parent
    well_known = Path(next(iter(grpc_tools.__path__))) / "_proto"
    out = str(out_dir)
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={PROTOS}",
        f"--proto_path={DEPS}",
        f"--proto_path={well_known}",
        f"--descriptor_set_in={VALIDATE_SET}",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out}",
        f"--mypy_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_grpc_out={out}",
        f"--descriptor_set_out={out_dir / DESCRIPTOR_SET}",
        "--include_imports",
        "--include_source_info",
        VALIDATE_PROTO,
        *proto_sources(),
    ]
    (out_dir / DESCRIPTOR_SET).parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        raise SystemExit(f"protoc failed with exit code {result.returncode}")


def drop_empty_grpc_modules(out_dir: Path) -> None:
    """Remove the `_pb2_grpc` files protoc writes for protos that declare no service."""
    descriptor_set = descriptor_pb2.FileDescriptorSet.FromString(
        (out_dir / DESCRIPTOR_SET).read_bytes()
    )
    for file in descriptor_set.file:
        if file.service:
            continue
        stem = file.name.removesuffix(".proto")
        for suffix in ("_pb2_grpc.py", "_pb2_grpc.pyi"):
            (out_dir / f"{stem}{suffix}").unlink(missing_ok=True)


def add_package_markers(out_dir: Path) -> None:
    for directory in sorted(p for p in out_dir.rglob("*") if p.is_dir()):
        (directory / "__init__.py").touch()
    (out_dir / "paynow" / "py.typed").touch()
    (out_dir / "buf" / "py.typed").touch()


def generate(out_dir: Path) -> None:
    assemble_deps()
    run_protoc(out_dir)
    drop_empty_grpc_modules(out_dir)
    add_package_markers(out_dir)


def compare_trees(expected: Path, actual: Path) -> list[str]:
    """List how `actual` differs from `expected`, one line per file."""
    problems: list[str] = []
    expected_files = {p.relative_to(expected) for p in expected.rglob("*") if p.is_file()}
    actual_files = {
        p.relative_to(actual)
        for p in actual.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    problems += [f"missing: generated/{p}" for p in sorted(expected_files - actual_files)]
    problems += [f"not generated: generated/{p}" for p in sorted(actual_files - expected_files)]
    for relative in sorted(expected_files & actual_files):
        if filecmp.cmp(expected / relative, actual / relative, shallow=False):
            continue
        problems.append(f"differs: generated/{relative}")
        if relative.suffix in {".py", ".pyi"}:
            diff = difflib.unified_diff(
                (actual / relative).read_text().splitlines(),
                (expected / relative).read_text().splitlines(),
                "working tree",
                "fresh make gen",
                lineterm="",
                n=1,
            )
            problems += [f"    {line}" for line in list(diff)[:20]]
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="compare a fresh run with generated/ instead"
    )
    parser.add_argument(
        "--image", type=Path, help="write a fresh descriptor set of protos/ here, nothing else"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="paynow-gen-") as temp:
        fresh = Path(temp) / "generated"
        fresh.mkdir()
        generate(fresh)
        if args.image:
            args.image.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(fresh / DESCRIPTOR_SET, args.image)
            return 0
        if args.check:
            problems = compare_trees(fresh, GENERATED)
            if problems:
                print("generated/ does not match protos/; run `make gen` and commit:")
                print("\n".join(problems))
                return 1
            print("generated/ matches protos/")
            return 0
        if GENERATED.exists():
            shutil.rmtree(GENERATED)
        shutil.copytree(fresh, GENERATED)
    print(f"generated {len(proto_sources())} protos into {GENERATED.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
