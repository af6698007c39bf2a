"""Domain errors and their google.rpc.Status form (AIP-193).

Service code raises these; the server interceptor turns them into rich gRPC errors. Nothing
here knows about a particular service: the domain for ErrorInfo is set per service. The
English message is a template with named values; its LocalizedMessage (and each field
violation's) is in the language the caller asked for, zh-CN by default
(services/common/messages.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from services.common.messages import EN, ZH, field_name, is_translated, say
from services.common.messages import Field as Field  # re-exported: call sites build messages
from services.common.messages import Msg as Msg


class DomainError(Exception):
    """A caller's error. `message` is an English template; the named `values` fill it in
    (services/common/messages.py says it again in Chinese from the `services` catalogue)."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    reason: str = "ERROR"

    def __init__(self, message: str, /, *, reason: str | None = None, **values: object) -> None:
        self.text: str = Msg(message, **values) if values else message
        super().__init__(str.__str__(self.text))
        self.message = str.__str__(self.text)
        if reason:
            self.reason = reason

    def details(self, lang: str = ZH) -> list[any_pb2.Any]:
        return []

    def localized(self, lang: str = ZH) -> str:
        """The message in `lang`: the catalogue's translation of its template filled with the
        same values; for a message the catalogue lacks, this kind of error's phrase and then
        the English."""
        if lang == EN or is_translated(self.text):
            return say(self.text, lang)
        phrase = ZH_BY_CODE.get(self.code, "请求失败")
        return f"{phrase}（{self.message}）"

    def to_status(self, domain: str, lang: str = ZH) -> status_pb2.Status:
        """The rich status: ErrorInfo, the subclass's details, and a LocalizedMessage in
        `lang` (zh-CN unless the caller asked for en) beside the English `message`
        (AIP-193)."""
        info = any_pb2.Any()
        info.Pack(error_details_pb2.ErrorInfo(reason=self.reason, domain=domain))
        return status_pb2.Status(
            code=self.code.value[0],
            message=self.message,
            details=[info, *self.details(lang), localized(self.localized(lang), lang)],
        )


def localized(message: str, lang: str = ZH) -> any_pb2.Any:
    """A google.rpc.LocalizedMessage, packed for a Status's details."""
    packed = any_pb2.Any()
    packed.Pack(error_details_pb2.LocalizedMessage(locale=lang, message=message))
    return packed


# The Chinese summary of each kind of error, for a message the catalogue lacks (one built
# outside the code the catalogue is extracted from).
ZH_BY_CODE: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.INVALID_ARGUMENT: "请求参数有误",
    grpc.StatusCode.NOT_FOUND: "未找到",
    grpc.StatusCode.ALREADY_EXISTS: "已存在",
    grpc.StatusCode.FAILED_PRECONDITION: "当前状态不允许此操作",
    grpc.StatusCode.PERMISSION_DENIED: "无权执行此操作",
    grpc.StatusCode.UNAUTHENTICATED: "未登录或登录已失效",
    grpc.StatusCode.UNAVAILABLE: "服务暂不可用，请稍后重试",
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

    def localized(self, lang: str = ZH) -> str:
        if lang == EN:
            return self.message
        return "请求参数有误：" + "；".join(self._said(f, d) for f, d in self.violations)

    @staticmethod
    def _said(field: str, description: str) -> str:
        if is_translated(description):
            return f"{field_name(field)}：{say(description)}"
        return f"{field_name(field)}（{field}）：{description}"

    def details(self, lang: str = ZH) -> list[any_pb2.Any]:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=f, description=str.__str__(d),
                    # the description alone: shown beside the field (or its flag)
                    localized_message=error_details_pb2.LocalizedMessage(
                        locale=lang, message=say(d, lang)))
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
        super().__init__(Msg("database unavailable; retry shortly"))
        self.retry_seconds = retry_seconds

    def details(self, lang: str = ZH) -> list[any_pb2.Any]:
        packed = any_pb2.Any()
        packed.Pack(error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=self.retry_seconds)))
        return [packed]


class Violations:
    """Collects bad fields so one error names all of them."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, field: str, description: str, /, **values: object) -> None:
        """`description` is an English template filled in with `values` (see DomainError)."""
        self.items.append((field, Msg(description, **values) if values else description))

    def check(self, ok: bool, field: str, description: str, /, **values: object) -> None:
        if not ok:
            self.add(field, description, **values)

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidArgument(self.items)


# Re-exported so callers need not import google.rpc themselves.
OK_CODE = code_pb2.OK
