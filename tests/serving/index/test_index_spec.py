"""IndexSpec: each index type with its own build parameters, read back from what Milvus describes, searched with
its own search parameter (HNSW on a Milvus server; Milvus Lite's refusal is in test_milvus_index)."""
from __future__ import annotations

import pytest

from common.errors import ConfigError
from common.settings import Settings
from serving.index.spec import IndexSpec


def test_the_settings_choose_the_type_and_only_its_parameters():
    assert IndexSpec.from_settings(Settings()) == IndexSpec("FLAT")
    assert IndexSpec.from_settings(Settings(index_type="IVF_FLAT", index_nlist=64, index_nprobe=8)) == \
        IndexSpec("IVF_FLAT", nlist=64)
    hnsw = IndexSpec.from_settings(Settings(index_type="HNSW", index_hnsw_m=32, index_hnsw_ef_construction=400))
    assert hnsw == IndexSpec("HNSW", m=32, ef_construction=400)
    assert hnsw.build_params() == {"M": 32, "efConstruction": 400}
    assert hnsw.label == "HNSW(M=32, efConstruction=400)"
    assert IndexSpec("IVF_FLAT", nlist=64).label == "IVF_FLAT(nlist=64)" and IndexSpec().label == "FLAT"


@pytest.mark.parametrize("kwargs, message", [
    ({"type": "ANNOY"}, "index type must be one of FLAT, IVF_FLAT, HNSW"),
    ({"type": "FLAT", "nlist": 8}, "nlist is not a parameter of a FLAT index"),
    ({"type": "IVF_FLAT", "nlist": 0}, r"IVF_FLAT's nlist must be in 1\.\.65536"),
    ({"type": "HNSW", "m": 16}, r"HNSW's efConstruction must be in 1\.\."),
    ({"type": "HNSW", "m": 4096, "ef_construction": 200}, r"HNSW's M must be in 2\.\.2048"),
    ({"type": "HNSW", "m": 16, "ef_construction": 200, "nlist": 8}, "nlist is not a parameter of a HNSW index"),
])
def test_a_parameter_out_of_range_or_of_another_type_is_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        IndexSpec(**kwargs)


def test_the_search_parameter_is_the_types_own_and_hnsw_keeps_at_least_the_hits_asked():
    assert IndexSpec().search_params(nprobe=16, ef=64, limit=100) == {}
    assert IndexSpec("IVF_FLAT", nlist=8).search_params(nprobe=16, ef=64, limit=100) == {"nprobe": 8}
    hnsw = IndexSpec("HNSW", m=16, ef_construction=200)
    assert hnsw.search_params(nprobe=16, ef=64, limit=10) == {"ef": 64}
    assert hnsw.search_params(nprobe=16, ef=64, limit=216) == {"ef": 216}   # Milvus refuses ef below the limit
    with pytest.raises(ConfigError, match="ef must be >= 1"):
        hnsw.search_params(nprobe=16, ef=0, limit=10)


def test_what_milvus_describes_reads_back_as_the_spec_it_was_built_from():
    """pymilvus's describe_index gives the index's key-value pairs flat (a server's HNSW: M, efConstruction as
    strings), or the build parameters as JSON under ``params``: both read the same."""
    hnsw = IndexSpec("HNSW", m=16, ef_construction=200)
    flat_pairs = {"index_type": "HNSW", "metric_type": "IP", "M": "16", "efConstruction": "200",
                  "field_name": "vector", "index_name": "vector", "total_rows": 10, "indexed_rows": 10}
    nested = {"index_type": "HNSW", "metric_type": "IP", "params": {"M": 16, "efConstruction": 200}}
    assert IndexSpec.from_description(flat_pairs) == hnsw == IndexSpec.from_description(nested)
    assert IndexSpec.from_description({"index_type": "IVF_FLAT", "nlist": "1024"}) == IndexSpec("IVF_FLAT", nlist=1024)
    assert IndexSpec.from_description({}) == IndexSpec("FLAT")
    with pytest.raises(ConfigError, match="DISKANN, which Strata does not search"):
        IndexSpec.from_description({"index_type": "DISKANN"})
