"""The component registry: duplicates are errors, unknown names suggest near misses, args are validated."""

import pytest
from pydantic import BaseModel

from tamperlab.errors import ConfigError
from tamperlab.registry import Registry


class Args(BaseModel):
    rank: int = 8


def test_register_build_and_validate():
    reg: Registry[tuple] = Registry("widget")

    @reg.register("lora-sft", args_model=Args)
    def make(args, **ctx):
        return ("built", args.rank, ctx)

    assert reg.build("lora-sft", {"rank": 4}, extra=1) == ("built", 4, {"extra": 1})
    assert reg.validate_args("lora-sft", None) == {"rank": 8}
    with pytest.raises(ConfigError, match=r"widget 'lora-sft': args\.rank"):
        reg.build("lora-sft", {"rank": "many"})
    with pytest.raises(ConfigError, match="did you mean lora-sft"):
        reg.build("lora-sf")
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("lora-sft")(make)
