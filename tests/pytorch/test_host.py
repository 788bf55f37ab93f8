"""The allocator setting `ganpack train` makes: freed activations are reused, not faulted in anew."""

import subprocess
import sys

import pytest

ALLOCATE = """
import resource, sys, torch
if sys.argv[1] == "keep":
    from gan_pack.pytorch.host import keep_freed_memory
    assert keep_freed_memory()
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
torch.empty(64 << 18).fill_(1.0)
before = faults()
for _ in range(20):
    torch.empty(64 << 18).fill_(1.0)          # 64 MiB of float32, written, freed
print(faults() - before)
"""


@pytest.mark.slow                       # two torch processes that write and free 64 MiB 20 times
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_freed_memory_is_reused_instead_of_faulted_in():
    def page_faults(setting: str) -> int:
        result = subprocess.run([sys.executable, "-c", ALLOCATE, setting], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        return int(result.stdout.split()[-1])

    default, kept = page_faults("default"), page_faults("keep")
    pages = 20 * (64 << 20) // 4096
    if default < pages / 2:
        pytest.skip("fresh mappings fault in huge pages on this kernel (transparent hugepages): too few to compare")
    assert default >= 0.9 * pages            # glibc maps each block afresh: every page faults again
    assert kept <= default / 2
