"""The baseline for bench/api_load.py: the smallest HTTP function, served the same way."""

import functions_framework
from flask import Request


@functions_framework.http
def hello(request: Request) -> str:
    return "Hello, World!"
