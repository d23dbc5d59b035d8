from nanokube.api.errors import StatusError, invalid, invalid_error, not_found_error, required
from nanokube.cli.errors import CLIError, add_source, format_error, format_errors
from nanokube.client import APIConnectionError, status_error


def test_invalid_with_one_cause_is_on_one_line():
    err = invalid_error("Service", "", "my-service",
                        [invalid("spec.ports[0].nodePort", 99, "provided port is not in the "
                                 "valid range. The range of valid ports is 30000-32767")])
    assert format_error(err) == (
        'The Service "my-service" is invalid: spec.ports[0].nodePort: Invalid value: 99: '
        "provided port is not in the valid range. The range of valid ports is 30000-32767\n")


def test_invalid_with_several_causes_lists_them():
    err = invalid_error("Service", "", "x", [required("spec.ports"),
                                               invalid("spec.type", "Foo")])
    assert format_error(err) == ('The Service "x" is invalid: \n'
                                 "* spec.ports: Required value\n"
                                 '* spec.type: Invalid value: "Foo"\n')


def test_invalid_keeps_the_kind_even_with_a_source_prefix():
    err = invalid_error("Service", "", "x", [required("spec.ports")])
    err = add_source(err, "creating", "svc.yaml")
    assert format_error(err) == 'The Service "x" is invalid: spec.ports: Required value\n'


def test_invalid_without_details():
    err = StatusError(422, "Invalid", "bad")
    assert format_error(err) == "The request is invalid: bad\n"


def test_other_status_errors_name_the_reason_and_the_source():
    err = add_source(StatusError(400, "BadRequest", 'Service in version "v1" cannot be handled '
                                 'as a Service: strict decoding error: unknown field '
                                 '"spec.clusterIp"'), "creating", "svc.yaml")
    assert format_error(err) == (
        'Error from server (BadRequest): error when creating "svc.yaml": Service in version '
        '"v1" cannot be handled as a Service: strict decoding error: unknown field '
        '"spec.clusterIp"\n')
    assert format_error(not_found_error("services", "", "x")) == \
        'Error from server (NotFound): services "x" not found\n'


def test_unauthorized_and_reasonless_errors():
    assert format_error(StatusError(401, "Unauthorized", "Unauthorized")) == \
        "error: You must be logged in to the server (Unauthorized)\n"
    assert format_error(StatusError(500, "", "boom")) == "Error from server: boom\n"


def test_client_errors_get_the_error_prefix():
    assert format_error(CLIError('the server doesn\'t have a resource type "foo"')) == \
        'error: the server doesn\'t have a resource type "foo"\n'


def test_connection_refused():
    err = APIConnectionError("https://127.0.0.1:6443", "127.0.0.1:6443", True, "refused")
    assert format_error(err) == ("The connection to the server 127.0.0.1:6443 was refused - "
                                 "did you specify the right host or port?\n")


def test_several_errors_print_one_standard_line_each():
    errs = [add_source(invalid_error("Service", "", "a", [required("spec.ports")]),
                       "creating", "f.yaml"),
            add_source(StatusError(409, "AlreadyExists", 'services "b" already exists'),
                       "creating", "f.yaml")]
    assert format_errors(errs) == (
        'Error from server (Invalid): error when creating "f.yaml": Service "a" is invalid: '
        "spec.ports: Required value\n"
        'Error from server (AlreadyExists): error when creating "f.yaml": services "b" '
        "already exists\n")


def test_status_error_keeps_the_servers_status():
    body = b'{"kind":"Status","apiVersion":"v1","status":"Failure","message":"m",' \
           b'"reason":"Conflict","details":{"name":"x","kind":"services"},"code":409}'
    err = status_error(409, body)
    assert (err.code, err.reason, err.message, err.details) == \
        (409, "Conflict", "m", {"name": "x", "kind": "services"})
    generic = status_error(404, b"404 page not found")
    assert (generic.code, generic.reason) == (404, "NotFound")
    assert generic.message == "the server could not find the requested resource"
