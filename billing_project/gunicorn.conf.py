"""Gunicorn settings of the reference project: ``gunicorn -c billing_project/gunicorn.conf.py billing_project.wsgi``.

Gunicorn's default access log writes the raw request line (OAuth ``code`` and
``state``, hosted-page ids), the ``Referer`` (portal access URLs) and the Basic
Auth username. This one writes the URL pattern Django matched, which
``orgbilling.request_log`` leaves in the WSGI environ, and the request id; no
value in it comes from the request but the method, which gunicorn has checked.
Every line, its error log's included, goes through orgbilling's plain
formatter, which escapes control characters.
"""

from gunicorn import glogging

from orgbilling.log_format import PlainFormatter

accesslog = "-"
access_log_format = '%(h)s %(t)s "%(m)s %({orgbilling.route}e)s" %(s)s %(B)s %(M)sms id=%({orgbilling.request_id}e)s'


class Logger(glogging.Logger):
    """Gunicorn's logger with every handler's lines escaped (a malformed request line cannot forge one)."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for handler in (*self.error_log.handlers, *self.access_log.handlers):
            handler.setFormatter(PlainFormatter(handler.formatter._fmt, handler.formatter.datefmt))


logger_class = Logger
