"""Errors printed exactly as kubectl prints them (k/kubectl pkg/cmd/util/helpers.go checkErr)."""
from __future__ import annotations

from urllib.parse import urlsplit

from nanokube.api.errors import StatusError


class CLIError(Exception):
    """A client-side error; printed as `error: <message>`."""


def no_resource_type(name: str) -> CLIError:
    return CLIError(f'the server doesn\'t have a resource type "{name}"')


def add_source(err: Exception, verb: str, source: str) -> Exception:
    """cmdutil.AddSourceToErr: prefix the message with `error when <verb> "<source>": `."""
    if not source:
        return err
    if isinstance(err, StatusError):
        return StatusError(err.code, err.reason,
                           f'error when {verb} "{source}": {err.message}', err.details)
    return CLIError(f'error when {verb} "{source}": {err}')


def standard_message(err: Exception) -> str | None:
    """StandardErrorMessage: the text for API and connection errors, None for others."""
    from nanokube.client import APIConnectionError
    if isinstance(err, StatusError):
        if err.reason == "Unauthorized":
            return f"error: You must be logged in to the server ({err.message})"
        if err.reason:
            return f"Error from server ({err.reason}): {err.message}"
        return f"Error from server: {err.message}"
    if isinstance(err, APIConnectionError):
        if err.refused:
            host = urlsplit(err.server).netloc or err.host
            return (f"The connection to the server {host} was refused - "
                    f"did you specify the right host or port?")
        return f"Unable to connect to the server: {err}"
    return None


def _cause_lines(causes: list[dict]) -> list[str]:
    return [f"{c['field']}: {c.get('message', '')}" if c.get("field") else c.get("message", "")
            for c in causes]


def format_error(err: Exception) -> str:
    """checkErr for one error; the text ends with a newline."""
    if isinstance(err, StatusError) and err.reason == "Invalid":
        details = err.details
        if details is None:
            return f"The request is invalid: {err.message}\n"
        head = "The request is invalid"
        if details.get("kind") or details.get("name"):
            head = f'The {details.get("kind", "")} "{details.get("name", "")}" is invalid'
        causes = _cause_lines(details.get("causes") or [])
        if not causes:
            return head + "\n"
        if len(causes) == 1:
            return f"{head}: {causes[0]}\n"
        return f"{head}: \n" + "".join(f"* {c}\n" for c in causes)
    msg = standard_message(err)
    if msg is None:
        msg = str(err)
        if not msg.startswith("error: "):
            msg = "error: " + msg
    return msg if msg.endswith("\n") else msg + "\n"


def format_errors(errs: list[Exception]) -> str:
    """What a command that collected several errors prints (an aggregate of one is unwrapped)."""
    if len(errs) == 1:
        return format_error(errs[0])
    return "".join((standard_message(e) or str(e)) + "\n" for e in errs)
