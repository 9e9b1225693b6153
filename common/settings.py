"""Strata's settings: every address, port, path and limit, with their defaults named here once (torch-free).

Sources, later ones winning:

1. the defaults of :class:`Settings`;
2. a YAML file: ``$STRATA_SETTINGS`` if set, else ``$STRATA_HOME/settings.yaml`` if it exists;
3. ``STRATA_<KEY>`` environment variables (``STRATA_GATEWAY_PORT=50052``), values parsed as YAML;
4. command-line flags, passed to :func:`load_settings` as ``{key: value}``.

Unknown keys and bad values raise ``ConfigError`` naming the key and where it came from. Each part listens on its
own address setting (``gateway_address``, ``gateway_metrics_address``, ``triton_address``, ``milvus_address``
and ``http_address`` for the HTTP/JSON API), loopback by default. Paths that are relative resolve under
``$STRATA_HOME``.

Secrets are never setting values (settings are printed by ``strata info`` and handed to the processes `strata up`
starts): a setting names the file that holds one, and an environment variable may hold it instead
(:data:`GATEWAY_TOKEN_ENV`, :data:`MILVUS_TOKEN_ENV`).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from common.config import from_dict, read_mapping
from common.errors import ConfigError
from common.home import strata_home

SETTINGS_ENV = "STRATA_SETTINGS"
SETTINGS_FILE = "settings.yaml"
ENV_PREFIX = "STRATA_"
GATEWAY_TOKEN_ENV = "STRATA_GATEWAY_TOKEN"   # the client's bearer token when gateway_token_file is unset
MILVUS_TOKEN_ENV = "STRATA_MILVUS_TOKEN"     # Milvus's token (or user:password) when milvus_token_file is unset
TEXT_FIELD_BYTES = 4096   # the caption text field of a Milvus collection: max_text_bytes may not exceed it
INDEX_TYPES = ("FLAT", "IVF_FLAT", "HNSW")   # the first-stage indexes Strata makes (serving.index.spec)
LITE_INDEX_TYPES = ("FLAT", "IVF_FLAT")      # those Milvus Lite builds: HNSW needs a Milvus server
CONSISTENCY_LEVELS = ("Strong", "Bounded", "Session", "Eventually")   # Milvus's, for the first-stage search
MAX_NLIST = 65536                    # Milvus's range for IVF_FLAT's nlist and nprobe
HNSW_M_RANGE = (2, 2048)             # Milvus's range for HNSW's M (links per node)
HNSW_EF_CONSTRUCTION_MAX = 2**31 - 1  # Milvus's bound for HNSW's efConstruction and ef
LIMITS = ("max_text_bytes", "max_ids_per_call", "max_video_frames", "max_regions", "max_file_bytes",
          "max_decoded_frames", "max_frame_pixels", "max_message_bytes")   # the size caps of a request (README)


@dataclass(frozen=True)
class Settings:
    gateway_address: str = "127.0.0.1"         # the gateway's gRPC interface; other than loopback it needs TLS
    gateway_metrics_address: str = "127.0.0.1"  # the gateway's Prometheus metrics interface
    triton_address: str = "127.0.0.1"          # Triton's HTTP, gRPC and metrics (model control loads code: keep private)
    milvus_address: str = "127.0.0.1"          # the local Milvus Lite server (no authentication: keep private)
    http_address: str = "127.0.0.1"            # the HTTP/JSON API's interface; other than loopback it needs TLS
    gateway_port: int = 50051                  # the gateway's gRPC port
    gateway_metrics_port: int = 9464           # the gateway's Prometheus metrics (HTTP)
    http_port: int = 8080                      # the HTTP/JSON API (and its OpenAPI description)
    milvus_port: int = 19530                   # the local Milvus Lite server started by `strata up`
    milvus_uri: str = ""                       # another Milvus (http://host:19530); empty: the local one
    triton_http_port: int = 8000
    triton_grpc_port: int = 8001
    triton_metrics_port: int = 8002
    # -- the gateway's credentials (server side); files in PEM, paths relative to $STRATA_HOME -----------------
    gateway_tls_cert: str = ""                 # its certificate chain; with gateway_tls_key: TLS on
    gateway_tls_key: str = ""                  # its private key
    gateway_client_ca: str = ""                # mTLS: clients must present a certificate this CA signed
    gateway_access_file: str = ""              # who may call: lines "read TOKEN", "write TOKEN", "read CN=NAME"
    gateway_insecure: bool = False             # allow a non-loopback gateway_address without TLS (don't)
    # -- a client's credentials (the client library, the CLI, the demo) -------------------------------------------
    gateway_tls_ca: str = ""                   # the CA that signed the gateway's certificate; set: TLS
    gateway_client_cert: str = ""              # mTLS: this client's certificate chain
    gateway_client_key: str = ""               # mTLS: its private key
    gateway_token_file: str = ""               # a file holding the bearer token (else $STRATA_GATEWAY_TOKEN)
    # -- Milvus's credentials, given to every Milvus client ------------------------------------------------------
    milvus_token_file: str = ""                # a file holding the token or user:password (else $STRATA_MILVUS_TOKEN)
    milvus_db: str = ""                        # the database; empty: Milvus's default
    milvus_tls_ca: str = ""                    # the CA (PEM) that signed Milvus's certificate, for an https:// URI
    model_repository: str = "model_repository"  # Triton model repository (relative: under $STRATA_HOME)
    model: str = ""                            # the model the gateway serves (e.g. hgr_fast); empty: the only one exported
    tensor_store: str = "tensors"              # the tensor store's root: a folder (LMDB; relative: under $STRATA_HOME), or lance:URI
    top_k: int = 10                            # hits per query unless the request says
    candidate_depth: int = 0                   # first-stage candidates per query unless the request says; 0 (unset):
                                               # the depth measured for the model and direction (its manifest)
    max_top_k: int = 1000                      # refused above
    max_candidate_depth: int = 10000           # refused above
    request_timeout_s: float = 30.0            # the client library's deadline per call, and each backend call's
    max_concurrent_calls: int = 16             # calls the gateway runs at once; one more: RESOURCE_EXHAUSTED at once
    store_dtype: str = "float16"               # tensor store precision: float16 or float32
    index_batch: int = 256                     # videos or captions per write to the stores
    # -- the first stage's vector index, for the collections the gateway makes (an existing one keeps its own) --------
    index_type: str = "FLAT"                   # FLAT (exact), IVF_FLAT (clusters; Milvus Lite ignores nprobe: README)
                                               # or HNSW (a graph; a Milvus server only, the cluster's usual choice)
    index_nlist: int = 1024                    # IVF_FLAT: k-means clusters per collection (1..65536)
    index_nprobe: int = 32                     # IVF_FLAT: clusters a search visits (1..index_nlist)
    index_hnsw_m: int = 16                     # HNSW: links per node (2..2048)
    index_hnsw_ef_construction: int = 200      # HNSW: candidates kept while inserting (>= 1)
    index_hnsw_ef: int = 256                   # HNSW: candidates kept while searching (>= 1; raised to the hits asked)
    search_consistency: str = "Strong"         # the first-stage search's Milvus consistency level (cluster: README)
    # -- size caps of one request: refused above with INVALID_ARGUMENT or RESOURCE_EXHAUSTED naming the setting -----
    max_text_bytes: int = 2048                 # a query's or caption's text, UTF-8 bytes (<= 4096, Milvus's field)
    max_ids_per_call: int = 10000              # ids in one Delete or IndexCaptions call, or one IndexVideos message
    max_video_frames: int = 2048               # frames of one uploaded video's features (kept whole as its source)
    max_regions: int = 256                     # regions per frame of one uploaded video's features
    max_file_bytes: int = 512 << 20            # one uploaded video file or clip (512 MiB)
    max_decoded_frames: int = 108000           # frames a video file may decode to (an hour at 30 fps)
    max_frame_pixels: int = 3840 * 2160        # width x height of a decoded frame (4K UHD)
    max_message_bytes: int = 64 << 20          # one gRPC message either way (64 MiB): a batch of features, a chunk

    def __post_init__(self) -> None:
        ports = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name.endswith("_port")}
        for key, port in ports.items():
            if not 0 <= port <= 65535:
                raise ValueError(f"{key} must be a port in 0..65535 (0: any free port), got {port}")
        for key in ("top_k", "max_top_k", "max_candidate_depth", "index_batch", "max_concurrent_calls", *LIMITS):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.candidate_depth < 0:
            raise ValueError(f"candidate_depth must be >= 0 (0: the model's measured depth), got {self.candidate_depth}")
        if self.top_k > self.max_top_k or self.candidate_depth > self.max_candidate_depth:
            raise ValueError("top_k and candidate_depth must not exceed max_top_k and max_candidate_depth")
        if self.max_text_bytes > TEXT_FIELD_BYTES:
            raise ValueError(f"max_text_bytes must be at most {TEXT_FIELD_BYTES} (the size of Milvus's caption field), "
                             f"got {self.max_text_bytes}")
        if self.request_timeout_s <= 0:
            raise ValueError(f"request_timeout_s must be > 0, got {self.request_timeout_s}")
        if self.index_type not in INDEX_TYPES:
            raise ValueError(f"index_type must be one of {', '.join(INDEX_TYPES)}, got {self.index_type!r}")
        if not 1 <= self.index_nlist <= MAX_NLIST:
            raise ValueError(f"index_nlist must be in 1..{MAX_NLIST}, got {self.index_nlist}")
        if self.search_consistency not in CONSISTENCY_LEVELS:
            raise ValueError(f"search_consistency must be one of {', '.join(CONSISTENCY_LEVELS)}, "
                             f"got {self.search_consistency!r}")
        if not 1 <= self.index_nprobe <= self.index_nlist:
            raise ValueError(f"index_nprobe must be in 1..index_nlist ({self.index_nlist}), got {self.index_nprobe}")
        if not HNSW_M_RANGE[0] <= self.index_hnsw_m <= HNSW_M_RANGE[1]:
            raise ValueError(f"index_hnsw_m must be in {HNSW_M_RANGE[0]}..{HNSW_M_RANGE[1]}, got {self.index_hnsw_m}")
        for key in ("index_hnsw_ef_construction", "index_hnsw_ef"):
            if not 1 <= getattr(self, key) <= HNSW_EF_CONSTRUCTION_MAX:
                raise ValueError(f"{key} must be in 1..{HNSW_EF_CONSTRUCTION_MAX}, got {getattr(self, key)}")
        if self.store_dtype not in ("float16", "float32"):
            raise ValueError(f"store_dtype must be float16 or float32, got {self.store_dtype!r}")
        for pair in (("gateway_tls_cert", "gateway_tls_key"), ("gateway_client_cert", "gateway_client_key")):
            if bool(getattr(self, pair[0])) != bool(getattr(self, pair[1])):
                raise ValueError(f"{pair[0]} and {pair[1]} go together: set both or neither")
        if self.gateway_client_ca and not self.gateway_tls_cert:
            raise ValueError("gateway_client_ca (mTLS) needs TLS: set gateway_tls_cert and gateway_tls_key too")
        for key in ("gateway_address", "http_address"):
            if not loopback(getattr(self, key)) and not self.gateway_tls_cert and not self.gateway_insecure:
                raise ValueError(f"{key} {getattr(self, key)} is not loopback and the gateway has no TLS: "
                                 "set gateway_tls_cert and gateway_tls_key (see the README's Security section), or "
                                 "gateway_insecure: true to expose it in plain text anyway")

    def secret_file(self, key: str) -> Path | None:
        """The file the credential setting ``key`` names (relative: under ``$STRATA_HOME``), or None when unset."""
        value = getattr(self, key)
        if not value:
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() else strata_home() / path

    def secret(self, key: str, env: str = "") -> bytes | None:
        """The contents of the file the setting ``key`` names, else of the environment variable ``env``, else
        None. A named file that cannot be read is a ``ConfigError`` naming the setting."""
        path = self.secret_file(key)
        if path is None:
            from_env = os.environ.get(env, "").strip() if env else ""
            return from_env.encode() if from_env else None
        try:
            return path.read_bytes()
        except OSError as err:
            raise ConfigError(f"setting {key}: cannot read {path} ({err.strerror}); point it at a readable file") from None

    # -- derived addresses ------------------------------------------------------------------------------------
    @property
    def gateway_url(self) -> str:
        return f"{reach(self.gateway_address)}:{self.gateway_port}"

    @property
    def http_url(self) -> str:
        """The HTTP/JSON API's base URL (https when the gateway has TLS: the API serves its certificate too)."""
        return http_base(reach(self.http_address), self.http_port, bool(self.gateway_tls_cert))

    @property
    def triton_url(self) -> str:
        return f"{reach(self.triton_address)}:{self.triton_grpc_port}"

    @property
    def triton_ports(self) -> tuple[int, int, int]:
        return self.triton_http_port, self.triton_grpc_port, self.triton_metrics_port

    @property
    def milvus(self) -> str:
        """The Milvus URI clients use."""
        return self.milvus_uri or f"http://{reach(self.milvus_address)}:{self.milvus_port}"

    @property
    def tensor_store_root(self) -> str:
        if ":" in self.tensor_store:
            return self.tensor_store
        path = Path(self.tensor_store).expanduser()
        return str(path if path.is_absolute() else strata_home() / path)

    @property
    def repository(self) -> Path:
        path = Path(self.model_repository).expanduser()
        return path if path.is_absolute() else strata_home() / path


def loopback(address: str) -> bool:
    """Whether ``address`` is a loopback interface (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    try:
        return address == "localhost" or ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def reach(bind: str) -> str:
    """The host a local client dials for a server bound to ``bind`` (all interfaces: loopback)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(bind, bind)


def http_base(host: str, port: int, tls: bool) -> str:
    """``http(s)://host:port``, an IPv6 host in brackets."""
    return f"{'https' if tls else 'http'}://{f'[{host}]' if ':' in host else host}:{port}"


def settings_file() -> Path | None:
    """The settings file in force, or None."""
    explicit = os.environ.get(SETTINGS_ENV)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"{SETTINGS_ENV}={explicit}: no such settings file")
        return path
    path = strata_home() / SETTINGS_FILE
    return path if path.is_file() else None


def _environment() -> dict[str, Any]:
    """``STRATA_<KEY>`` variables that name a setting; non-string values are parsed as YAML."""
    hints = get_type_hints(Settings)
    out: dict[str, Any] = {}
    for name, raw in os.environ.items():
        key = name[len(ENV_PREFIX):].lower() if name.startswith(ENV_PREFIX) else ""
        if key not in hints:
            continue  # other STRATA_* variables (STRATA_HOME, STRATA_SETTINGS) are not settings
        try:
            out[key] = raw if hints[key] is str else yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(f"{name}={raw!r}: not a valid value for setting {key}") from None
    return out


def load_settings(flags: dict[str, Any] | None = None) -> Settings:
    """The settings in force: defaults < file < ``STRATA_*`` environment < ``flags`` (None values are ignored)."""
    data: dict[str, Any] = {}
    sources: list[str] = []
    path = settings_file()
    if path is not None:
        data.update(read_mapping(path))
        sources.append(str(path))
    environment = _environment()
    if environment:
        data.update(environment)
        sources.append("environment " + ", ".join(f"{ENV_PREFIX}{k.upper()}" for k in environment))
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    if given:
        data.update(given)
        sources.append("flags " + ", ".join(f"--{k.replace('_', '-')}" for k in given))
    return from_dict(Settings, data, where="settings (" + "; ".join(sources or ["defaults"]) + ")")


def describe(settings: Settings) -> dict[str, Any]:
    """Every setting with its value, for ``strata info`` and logs."""
    return {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}
