"""Constants of the API group and the base class every API model shares."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

GROUP = "tuneforge.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "FineTuneJob"
PLURAL = "finetunejobs"
SINGULAR = "finetunejob"
SHORT_NAME = "ftj"


class ApiModel(BaseModel):
    """Base of every API object: camelCase on the wire, snake_case in Python.

    Unknown fields are refused (`extra="forbid"`), as the CRD's structural schema prunes
    them: a misspelt field is an error here rather than a silently ignored setting.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=False,
        validate_assignment=True,
        use_attribute_docstrings=True,
    )

    def to_wire(self) -> dict[str, object]:
        """Dump as the Kubernetes API sees it: camelCase, JSON types, no unset optionals."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
