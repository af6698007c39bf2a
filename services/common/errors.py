"""Domain errors and their google.rpc.Status form (AIP-193).

Service code raises these; the server interceptor turns them into rich gRPC errors. Nothing
here knows about a particular service: the domain for ErrorInfo is set per service.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2


class DomainError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    reason: str = "ERROR"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason:
            self.reason = reason

    def details(self) -> list[any_pb2.Any]:
        return []

    def localized(self) -> str:
        """The message in Chinese (zh-CN): the fixed phrase for this kind of error, then the
        English particulars (ids, field names) when the message is not itself a fixed phrase."""
        fixed = ZH_MESSAGES.get(self.message)
        if fixed:
            return fixed
        phrase = ZH_BY_CODE.get(self.code, "请求失败")
        return f"{phrase}（{self.message}）"

    def to_status(self, domain: str) -> status_pb2.Status:
        """The rich status: ErrorInfo, the subclass's details, and a LocalizedMessage in
        zh-CN beside the English `message` (AIP-193)."""
        info = any_pb2.Any()
        info.Pack(error_details_pb2.ErrorInfo(reason=self.reason, domain=domain))
        return status_pb2.Status(
            code=self.code.value[0],
            message=self.message,
            details=[info, *self.details(), zh_cn(self.localized())],
        )


def zh_cn(message: str) -> any_pb2.Any:
    """A google.rpc.LocalizedMessage in zh-CN, packed for a Status's details."""
    packed = any_pb2.Any()
    packed.Pack(error_details_pb2.LocalizedMessage(locale="zh-CN", message=message))
    return packed


# The Chinese summary of each kind of error, shown to staff whose client asks for zh-CN.
ZH_BY_CODE: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.INVALID_ARGUMENT: "请求参数有误",
    grpc.StatusCode.NOT_FOUND: "未找到",
    grpc.StatusCode.ALREADY_EXISTS: "已存在",
    grpc.StatusCode.FAILED_PRECONDITION: "当前状态不允许此操作",
    grpc.StatusCode.PERMISSION_DENIED: "无权执行此操作",
    grpc.StatusCode.UNAUTHENTICATED: "未登录或登录已失效",
    grpc.StatusCode.UNAVAILABLE: "服务暂不可用，请稍后重试",
}
# Whole messages that are fixed phrases.
ZH_MESSAGES: dict[str, str] = {
    "database unavailable; retry shortly": "数据库暂不可用，请稍后重试",
}


class InvalidArgument(DomainError):
    """One BadRequest listing every bad field."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"

    def __init__(self, violations: Mapping[str, str] | Iterable[tuple[str, str]]) -> None:
        items = list(violations.items() if isinstance(violations, Mapping) else violations)
        self.violations = items
        fields = ", ".join(f for f, _ in items)
        super().__init__(f"invalid argument: {fields}: " + "; ".join(d for _, d in items))

    def localized(self) -> str:
        return "请求参数有误：" + "；".join(f"{f}：{d}" for f, d in self.violations)

    def details(self) -> list[any_pb2.Any]:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                for f, d in self.violations
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(bad)
        return [packed]


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "NOT_FOUND"


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS
    reason = "ALREADY_EXISTS"


class FailedPrecondition(DomainError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class Unavailable(DomainError):
    """A dependency (another service) could not be reached; the caller may retry."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = "DEPENDENCY_UNAVAILABLE"


class DatabaseUnavailable(Unavailable):
    """The service's database did not answer (connection lost, server restarting, SQLite file
    locked by another process). The call's transaction was rolled back whole (or, when the
    connection broke during COMMIT, committed whole): retry after RetryInfo.retry_delay with
    the same request_id."""

    reason = "DATABASE_UNAVAILABLE"

    def __init__(self, retry_seconds: int = 1) -> None:
        super().__init__("database unavailable; retry shortly")
        self.retry_seconds = retry_seconds

    def details(self) -> list[any_pb2.Any]:
        packed = any_pb2.Any()
        packed.Pack(error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=self.retry_seconds)))
        return [packed]


class Violations:
    """Collects bad fields so one error names all of them."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, field: str, description: str) -> None:
        self.items.append((field, description))

    def check(self, ok: bool, field: str, description: str) -> None:
        if not ok:
            self.add(field, description)

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidArgument(self.items)


# Re-exported so callers need not import google.rpc themselves.
OK_CODE = code_pb2.OK
