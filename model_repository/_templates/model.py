"""Triton python-backend adapter for one Strata ONNX graph (copied by ``strata export`` into each version folder).

Only translation: the work is :class:`export.runner.OnnxPart` (ONNX Runtime), the same code the gateway
runs. Input names and output types come from this model's ``config.pbtxt``; requests of one dynamic batch that
agree on every non-batch dimension run as one ONNX Runtime call; a failed request gets its own error response.
"""
import json
from pathlib import Path

import triton_python_backend_utils as pb_utils

from common.repository import ONNX_FILE
from export.runner import OnnxPart


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        folder = Path(args["model_repository"]) / args["model_version"]
        self.part = OnnxPart(folder / ONNX_FILE, threads=int(params.get("threads", "0")), spinning=False)
        self.inputs = [spec["name"] for spec in config["input"]]
        self.dtypes = {spec["name"]: pb_utils.triton_string_to_numpy(spec["data_type"]) for spec in config["output"]}
        self.batched = config.get("max_batch_size", 0) > 0

    def execute(self, requests):
        feeds = [{name: pb_utils.get_input_tensor_by_name(r, name).as_numpy() for name in self.inputs} for r in requests]
        responses = []
        for request, result in zip(requests, self.part.run_many(feeds, self.batched)):
            if isinstance(result, Exception):
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(result))))
                continue
            names = request.requested_output_names() or list(self.dtypes)
            tensors = [pb_utils.Tensor(name, result[name].astype(self.dtypes[name], copy=False)) for name in names]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses
