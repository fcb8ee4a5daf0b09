"""The leading comments of proto fields, read from an image buf builds with source info: what the
required-comment walks compare with what the running services do."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parents[2]
FIELD_PATH = 2  # DescriptorProto.field in SourceCodeInfo paths
MESSAGE_PATH = 4  # FileDescriptorProto.message_type


def field_comments(package: str, workdir: Path) -> dict[tuple[str, str], str]:
    """(message, field) -> the field's leading comment on one line, for the top-level messages of
    `package`."""
    buf = ROOT / "node_modules" / ".bin" / "buf"
    if not buf.exists():
        pytest.fail("buf is not installed: run `./dev setup`")
    image = workdir / "image.binpb"
    subprocess.run([str(buf), "build", "--as-file-descriptor-set", "-o", str(image)], cwd=ROOT, check=True)
    files = descriptor_pb2.FileDescriptorSet.FromString(image.read_bytes())
    found: dict[tuple[str, str], str] = {}
    for file in files.file:
        if file.package != package:
            continue
        by_path = {tuple(loc.path): loc.leading_comments for loc in file.source_code_info.location}
        for m_index, message in enumerate(file.message_type):
            for f_index, field in enumerate(message.field):
                path = (MESSAGE_PATH, m_index, FIELD_PATH, f_index)
                found[(message.name, field.name)] = " ".join(by_path.get(path, "").split())
    return found
