"""Tuning knobs of a storage object (rate limit, multipart sizes, retries)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MiB = 1024 * 1024
S3_MIN_PART = 5 * MiB  # S3 rejects smaller parts (except the last)


class StorageOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # bytes/s over every upload and download through one storage object (None: unlimited)
    rate_limit: int | None = Field(default=None, gt=0)
    # files from this size up go multipart; parts of part_size, grown (doubled) by s3transfer
    # when a file would need more than S3's 10,000 parts
    multipart_threshold: int = Field(default=64 * MiB, ge=S3_MIN_PART)
    part_size: int = Field(default=16 * MiB, ge=S3_MIN_PART)
    max_concurrency: int = Field(default=8, ge=1, le=64)  # parts in flight per storage object
    # downloaded chunks (s3transfer's 256 KiB) queued for the one thread that writes them to disk:
    # s3transfer's default 1000 let an agent whose disk thread fell behind hold 250 MB
    max_io_queue: int = Field(default=64, ge=1)
    # botocore retries (throttling, 5xx, connection errors) with capped exponential backoff;
    # 20 attempts as TiDB BR; 'adaptive' also slows the client down after SlowDown answers
    retry_mode: Literal["standard", "adaptive"] = "standard"
    max_attempts: int = Field(default=20, ge=1, le=100)
    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=60.0, gt=0)
    # sent on every PUT and every part: Object-Lock buckets refuse writes without an integrity header
    checksum_algorithm: Literal["CRC32", "CRC32C", "SHA1", "SHA256"] = "CRC32"
