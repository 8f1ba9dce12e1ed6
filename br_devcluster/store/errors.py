"""Exceptions the services raise, and their translation into each response's error fields.

Every servicer method is wrapped by `rpc(ResponseType)`: a region error goes into the response's
region_error (or its errorpb.Error field), a failure into its error string or message, and only
a malformed request, or an error where the response has no place for it, ends the call with a
gRPC status.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from br_common.kvproto import errorpb_pb2, import_sstpb_pb2, kvrpcpb_pb2
from br_common.pd_client import PDError

log = logging.getLogger(__name__)


class StoreError(RuntimeError):
    """A request the store cannot carry out (bad input, missing file, peer unreachable)."""


class StorageError(StoreError):
    """An error of TiKV's storage layer (bad column family, API version, TTL): TiKV answers it in
    the response, in Display form in an error string, in Debug form (`Error(Variant ...)`) in a
    KvPair's KeyError.abort where the response has only pairs (RawScan, RawBatchGet)."""

    def __init__(self, display: str, debug: str) -> None:
        super().__init__(display)
        self.debug = debug


class InvalidArgument(StoreError):
    """A malformed request (bad read ts metadata, unknown column family): always ends the call
    with INVALID_ARGUMENT, as TiKV rejects what it cannot parse."""


class RegionError(Exception):
    """The request does not match the region as PD knows it; carries the errorpb.Error."""

    def __init__(self, error: errorpb_pb2.Error) -> None:
        super().__init__(error.message)
        self.error = error


def pd_unavailable(exc: PDError) -> RegionError:
    """PD did not answer: the client should back off and retry, as on a busy TiKV."""
    message = f"PD unavailable: {exc}"
    return RegionError(errorpb_pb2.Error(message=message, server_is_busy=errorpb_pb2.ServerIsBusy(reason=message)))


R = TypeVar("R", bound=Message)
Method = Callable[[Any, Any, grpc.ServicerContext], Any]


def rpc(response_type: type[R]) -> Callable[[Method], Method]:
    """Wrap a unary servicer method so that it answers errors instead of raising."""

    def wrap(fn: Method) -> Method:
        @functools.wraps(fn)
        def method(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
            try:
                return fn(self, request, context)
            except InvalidArgument as exc:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            except RegionError as exc:
                return region_response(response_type, exc.error, context)
            except PDError as exc:
                return region_response(response_type, pd_unavailable(exc).error, context)
            except StoreError as exc:
                return error_response(response_type, str(exc), context, grpc.StatusCode.FAILED_PRECONDITION,
                                      getattr(exc, "debug", str(exc)))
            except Exception as exc:  # noqa: BLE001 - a bug must not take the store down
                log.exception("%s failed", fn.__name__)
                return error_response(response_type, f"internal error: {exc}", context, grpc.StatusCode.INTERNAL)

        return method

    return wrap


def error_response(response_type: type[R], message: str, context: grpc.ServicerContext,
                   code: grpc.StatusCode, key_error: str | None = None) -> R:
    """The error in the response's error field (coprocessor.Response: other_error; a KeyError
    field, or the Kv* responses' repeated `errors`: KeyError.abort with key_error, else message);
    where there is none but a list of KvPairs, as TiKV's extract_kv_pairs: one pair carrying
    KeyError.abort (key_error, else message)."""
    fields = response_type.DESCRIPTOR.fields_by_name
    if "error" not in fields and "other_error" in fields:  # coprocessor.Response
        return response_type(other_error=message)
    key_error_field = _key_error_field(response_type)
    if key_error_field is not None:  # the Kv* responses, as TiKV's extract_key_error(s)
        abort = kvrpcpb_pb2.KeyError(abort=key_error or message)
        return response_type(**{key_error_field: [abort] if key_error_field == "errors" else abort})
    field = fields.get("error")
    if field is None:
        pairs = _kv_pairs_field(response_type)
        if pairs is None:
            context.abort(code, message)
        abort = kvrpcpb_pb2.KeyError(abort=key_error or message)
        return response_type(**{pairs: [kvrpcpb_pb2.KvPair(error=abort)]})
    if field.message_type is None:
        return response_type(error=message)
    if field.message_type.full_name == errorpb_pb2.Error.DESCRIPTOR.full_name:
        return response_type(error=errorpb_pb2.Error(message=message))
    if field.message_type.full_name == import_sstpb_pb2.Error.DESCRIPTOR.full_name:
        return response_type(error=import_sstpb_pb2.Error(message=message))
    context.abort(code, message)


def region_response(response_type: type[R], error: errorpb_pb2.Error, context: grpc.ServicerContext) -> R:
    fields = response_type.DESCRIPTOR.fields_by_name
    if "region_error" in fields:
        return response_type(region_error=error)
    field = fields.get("error")
    if field is not None and field.message_type is not None:
        if field.message_type.full_name == errorpb_pb2.Error.DESCRIPTOR.full_name:
            return response_type(error=error)
        if field.message_type.full_name == import_sstpb_pb2.Error.DESCRIPTOR.full_name:
            return response_type(error=import_sstpb_pb2.Error(message=error.message, store_error=error))
    return error_response(response_type, error.message, context, grpc.StatusCode.FAILED_PRECONDITION)


def _kv_pairs_field(response_type: type[Message]) -> str | None:
    """The name of the response's repeated KvPair field (kvs, pairs), if it has one."""
    for field in response_type.DESCRIPTOR.fields:
        if field.message_type is not None and field.message_type.full_name == kvrpcpb_pb2.KvPair.DESCRIPTOR.full_name:
            return field.name
    return None


def _key_error_field(response_type: type[Message]) -> str | None:
    """`error` or `errors` when it holds kvrpcpb.KeyError (the transactional responses)."""
    for name in ("error", "errors"):
        field = response_type.DESCRIPTOR.fields_by_name.get(name)
        if field is not None and field.message_type is not None and \
                field.message_type.full_name == kvrpcpb_pb2.KeyError.DESCRIPTOR.full_name:
            return name
    return None
