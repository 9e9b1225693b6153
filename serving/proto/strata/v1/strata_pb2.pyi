from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ItemKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ITEM_KIND_UNSPECIFIED: _ClassVar[ItemKind]
    ITEM_KIND_VIDEO: _ClassVar[ItemKind]
    ITEM_KIND_CAPTION: _ClassVar[ItemKind]
ITEM_KIND_UNSPECIFIED: ItemKind
ITEM_KIND_VIDEO: ItemKind
ITEM_KIND_CAPTION: ItemKind

class Tensor(_message.Message):
    __slots__ = ("shape", "data")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class VideoFeatures(_message.Message):
    __slots__ = ("frames", "regions")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    frames: Tensor
    regions: Tensor
    def __init__(self, frames: _Optional[_Union[Tensor, _Mapping]] = ..., regions: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class ModelVersion(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class SearchVideosRequest(_message.Message):
    __slots__ = ("text", "top_k", "candidate_depth", "evidence")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    text: str
    top_k: int
    candidate_depth: int
    evidence: bool
    def __init__(self, text: _Optional[str] = ..., top_k: _Optional[int] = ..., candidate_depth: _Optional[int] = ..., evidence: _Optional[bool] = ...) -> None: ...

class SearchCaptionsRequest(_message.Message):
    __slots__ = ("video_id", "features", "top_k", "candidate_depth", "evidence")
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    video_id: str
    features: VideoFeatures
    top_k: int
    candidate_depth: int
    evidence: bool
    def __init__(self, video_id: _Optional[str] = ..., features: _Optional[_Union[VideoFeatures, _Mapping]] = ..., top_k: _Optional[int] = ..., candidate_depth: _Optional[int] = ..., evidence: _Optional[bool] = ...) -> None: ...

class ScoreVideosRequest(_message.Message):
    __slots__ = ("text", "video_ids", "evidence")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    VIDEO_IDS_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    text: str
    video_ids: _containers.RepeatedScalarFieldContainer[str]
    evidence: bool
    def __init__(self, text: _Optional[str] = ..., video_ids: _Optional[_Iterable[str]] = ..., evidence: _Optional[bool] = ...) -> None: ...

class LevelScore(_message.Message):
    __slots__ = ("level", "score", "empty")
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    EMPTY_FIELD_NUMBER: _ClassVar[int]
    level: str
    score: float
    empty: bool
    def __init__(self, level: _Optional[str] = ..., score: _Optional[float] = ..., empty: _Optional[bool] = ...) -> None: ...

class FrameWeight(_message.Message):
    __slots__ = ("frame", "weight", "time_s")
    FRAME_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    TIME_S_FIELD_NUMBER: _ClassVar[int]
    frame: int
    weight: float
    time_s: float
    def __init__(self, frame: _Optional[int] = ..., weight: _Optional[float] = ..., time_s: _Optional[float] = ...) -> None: ...

class NodeEvidence(_message.Message):
    __slots__ = ("words", "frames")
    WORDS_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    words: str
    frames: _containers.RepeatedCompositeFieldContainer[FrameWeight]
    def __init__(self, words: _Optional[str] = ..., frames: _Optional[_Iterable[_Union[FrameWeight, _Mapping]]] = ...) -> None: ...

class LevelEvidence(_message.Message):
    __slots__ = ("level", "temporal", "nodes")
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    TEMPORAL_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    level: str
    temporal: bool
    nodes: _containers.RepeatedCompositeFieldContainer[NodeEvidence]
    def __init__(self, level: _Optional[str] = ..., temporal: _Optional[bool] = ..., nodes: _Optional[_Iterable[_Union[NodeEvidence, _Mapping]]] = ...) -> None: ...

class Hit(_message.Message):
    __slots__ = ("id", "score", "levels", "source", "duration", "text", "video_id", "evidence")
    ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    id: str
    score: float
    levels: _containers.RepeatedCompositeFieldContainer[LevelScore]
    source: str
    duration: float
    text: str
    video_id: str
    evidence: _containers.RepeatedCompositeFieldContainer[LevelEvidence]
    def __init__(self, id: _Optional[str] = ..., score: _Optional[float] = ..., levels: _Optional[_Iterable[_Union[LevelScore, _Mapping]]] = ..., source: _Optional[str] = ..., duration: _Optional[float] = ..., text: _Optional[str] = ..., video_id: _Optional[str] = ..., evidence: _Optional[_Iterable[_Union[LevelEvidence, _Mapping]]] = ...) -> None: ...

class StageTiming(_message.Message):
    __slots__ = ("stage", "ms")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    MS_FIELD_NUMBER: _ClassVar[int]
    stage: str
    ms: float
    def __init__(self, stage: _Optional[str] = ..., ms: _Optional[float] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("hits", "model", "candidates", "timings")
    HITS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[Hit]
    model: ModelVersion
    candidates: int
    timings: _containers.RepeatedCompositeFieldContainer[StageTiming]
    def __init__(self, hits: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ..., model: _Optional[_Union[ModelVersion, _Mapping]] = ..., candidates: _Optional[int] = ..., timings: _Optional[_Iterable[_Union[StageTiming, _Mapping]]] = ...) -> None: ...

class VideoItem(_message.Message):
    __slots__ = ("id", "features", "source", "duration")
    ID_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    id: str
    features: VideoFeatures
    source: str
    duration: float
    def __init__(self, id: _Optional[str] = ..., features: _Optional[_Union[VideoFeatures, _Mapping]] = ..., source: _Optional[str] = ..., duration: _Optional[float] = ...) -> None: ...

class IndexVideosRequest(_message.Message):
    __slots__ = ("videos",)
    VIDEOS_FIELD_NUMBER: _ClassVar[int]
    videos: _containers.RepeatedCompositeFieldContainer[VideoItem]
    def __init__(self, videos: _Optional[_Iterable[_Union[VideoItem, _Mapping]]] = ...) -> None: ...

class CaptionItem(_message.Message):
    __slots__ = ("id", "text", "video_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    text: str
    video_id: str
    def __init__(self, id: _Optional[str] = ..., text: _Optional[str] = ..., video_id: _Optional[str] = ...) -> None: ...

class IndexCaptionsRequest(_message.Message):
    __slots__ = ("captions",)
    CAPTIONS_FIELD_NUMBER: _ClassVar[int]
    captions: _containers.RepeatedCompositeFieldContainer[CaptionItem]
    def __init__(self, captions: _Optional[_Iterable[_Union[CaptionItem, _Mapping]]] = ...) -> None: ...

class IndexResponse(_message.Message):
    __slots__ = ("indexed", "total", "model")
    INDEXED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    indexed: int
    total: int
    model: ModelVersion
    def __init__(self, indexed: _Optional[int] = ..., total: _Optional[int] = ..., model: _Optional[_Union[ModelVersion, _Mapping]] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("kind", "ids")
    KIND_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    kind: ItemKind
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, kind: _Optional[_Union[ItemKind, str]] = ..., ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("deleted", "total")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    total: int
    def __init__(self, deleted: _Optional[int] = ..., total: _Optional[int] = ...) -> None: ...

class DescribeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DescribeResponse(_message.Message):
    __slots__ = ("model", "levels", "videos", "captions", "index_view", "store_dtype", "default_top_k", "default_candidate_depth", "frame_dim", "region_dim", "max_frames")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    VIDEOS_FIELD_NUMBER: _ClassVar[int]
    CAPTIONS_FIELD_NUMBER: _ClassVar[int]
    INDEX_VIEW_FIELD_NUMBER: _ClassVar[int]
    STORE_DTYPE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_TOP_K_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_CANDIDATE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    FRAME_DIM_FIELD_NUMBER: _ClassVar[int]
    REGION_DIM_FIELD_NUMBER: _ClassVar[int]
    MAX_FRAMES_FIELD_NUMBER: _ClassVar[int]
    model: ModelVersion
    levels: _containers.RepeatedScalarFieldContainer[str]
    videos: int
    captions: int
    index_view: str
    store_dtype: str
    default_top_k: int
    default_candidate_depth: int
    frame_dim: int
    region_dim: int
    max_frames: int
    def __init__(self, model: _Optional[_Union[ModelVersion, _Mapping]] = ..., levels: _Optional[_Iterable[str]] = ..., videos: _Optional[int] = ..., captions: _Optional[int] = ..., index_view: _Optional[str] = ..., store_dtype: _Optional[str] = ..., default_top_k: _Optional[int] = ..., default_candidate_depth: _Optional[int] = ..., frame_dim: _Optional[int] = ..., region_dim: _Optional[int] = ..., max_frames: _Optional[int] = ...) -> None: ...

class VideoFileChunk(_message.Message):
    __slots__ = ("id", "filename", "data", "top_k", "candidate_depth", "evidence")
    ID_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    id: str
    filename: str
    data: bytes
    top_k: int
    candidate_depth: int
    evidence: bool
    def __init__(self, id: _Optional[str] = ..., filename: _Optional[str] = ..., data: _Optional[bytes] = ..., top_k: _Optional[int] = ..., candidate_depth: _Optional[int] = ..., evidence: _Optional[bool] = ...) -> None: ...

class FileError(_message.Message):
    __slots__ = ("id", "filename", "message")
    ID_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    id: str
    filename: str
    message: str
    def __init__(self, id: _Optional[str] = ..., filename: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class IndexFilesResponse(_message.Message):
    __slots__ = ("indexed", "total", "model", "errors", "sampling", "frame_backbone_version")
    INDEXED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    FRAME_BACKBONE_VERSION_FIELD_NUMBER: _ClassVar[int]
    indexed: int
    total: int
    model: ModelVersion
    errors: _containers.RepeatedCompositeFieldContainer[FileError]
    sampling: str
    frame_backbone_version: int
    def __init__(self, indexed: _Optional[int] = ..., total: _Optional[int] = ..., model: _Optional[_Union[ModelVersion, _Mapping]] = ..., errors: _Optional[_Iterable[_Union[FileError, _Mapping]]] = ..., sampling: _Optional[str] = ..., frame_backbone_version: _Optional[int] = ...) -> None: ...
