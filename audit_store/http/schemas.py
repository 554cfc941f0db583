"""Request bodies of the audit API (unknown fields are rejected)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class HoldBody(BaseModel):
    """`POST /api/v1/audit/holds`: exactly one of `user_id` or `task_id`."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    user_id: str | None = Field(None, min_length=1, max_length=200)
    task_id: str | None = Field(None, min_length=1, max_length=200)
    reason: str = Field("", max_length=2000)

    @model_validator(mode="after")
    def _exactly_one(self) -> HoldBody:
        if (self.user_id is None) == (self.task_id is None):
            raise ValueError("give exactly one of 'user_id' or 'task_id'")
        return self
