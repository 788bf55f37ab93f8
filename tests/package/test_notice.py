"""`pack --data-notice`: a file someone else wrote goes into a model card only as checked text. It is
opened only if it is a regular file (no link is followed, no FIFO waited on), its size is read before
its bytes, a /proc-like file whose size says nothing is refused, and control characters never reach
the card. Fuzzed with hypothesis: whatever the bytes, the reader returns clean text or refuses."""

import os
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import one_error_line, run_cli, shipped
from gan_pack.errors import ConfigError
from gan_pack.package.pack import MAX_NOTICE_BYTES, read_notice


def refused(path, *words):
    with pytest.raises(ConfigError) as caught:
        read_notice(str(path))
    for word in words:
        assert word in str(caught.value), (word, str(caught.value))


def test_a_plain_notice_is_read_as_written(tmp_path):
    notice = tmp_path / "NOTICE.md"
    notice.write_text("# Data\n\nCC-BY 4.0, \u00a9 someone \u2014 emoji \U0001F600\u200d\U0001F4BB\n\n")
    assert read_notice(str(notice)) == "# Data\n\nCC-BY 4.0, \u00a9 someone \u2014 emoji \U0001F600\u200d\U0001F4BB"


def test_a_link_is_not_followed_even_to_a_readable_secret(tmp_path):
    (tmp_path / "secret").write_text("TOKEN=hunter2\n")
    (tmp_path / "notice.md").symlink_to(tmp_path / "secret")
    refused(tmp_path / "notice.md", "symbolic link")


def test_pseudo_files_fifos_and_devices_are_refused_unread(tmp_path):
    refused("/proc/self/environ", "pseudo-file")
    refused("/dev/zero", "not a regular file")
    os.mkfifo(tmp_path / "fifo")
    refused(tmp_path / "fifo", "not a regular file")               # and it did not hang
    refused(tmp_path, "not a regular file")
    refused(tmp_path / "missing.md", "cannot be read")


def test_a_huge_sparse_file_is_refused_from_its_size(tmp_path):
    big = tmp_path / "big.md"
    with open(big, "wb") as f:
        f.truncate(2 << 30)                                         # 2 GiB, no blocks on disk
    refused(big, "2,147,483,648 bytes", "64 KiB")


@pytest.mark.parametrize("text", ["a\x00b", "red \x1b[31mtext", "\x07bell", "c1 \x9b31m"])
def test_control_characters_are_refused(tmp_path, text):
    (tmp_path / "n.md").write_text(text, encoding="utf-8")
    refused(tmp_path / "n.md", "control character")


def test_pack_refuses_a_bad_notice_in_one_line_and_writes_nothing(tmp_path, capsys):
    pytest.importorskip("onnx")
    (tmp_path / "notice.md").symlink_to("/proc/self/environ")
    out = tmp_path / "pkg"
    code, _, err = run_cli(["pack", shipped("mnist-gan.onnx"), "-o", out, "--data-notice", tmp_path / "notice.md"],
                           capsys)
    one_error_line(code, err, "--data-notice", "symbolic link")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["notice.md"]


@pytest.mark.slow                       # 2,000 files: the full suite
@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=300),
                      st.text(max_size=300).map(lambda t: t.encode("utf-8")),
                      st.text(alphabet=string.printable, max_size=300).map(str.encode)))
def test_fuzz_whatever_the_bytes_clean_text_or_one_refusal(tmp_path, data):
    path = tmp_path / "fuzz.md"
    path.write_bytes(data)
    try:
        text = read_notice(str(path))
    except ConfigError as e:
        assert "\n" not in str(e)
        return
    assert text and text == data.decode("utf-8").strip() and len(data) <= MAX_NOTICE_BYTES
    assert all(c in "\t\n\r" or not (ord(c) < 32 or 127 <= ord(c) < 160) for c in text)
