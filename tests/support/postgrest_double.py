"""A PostgREST test double: `POST /rest/v1/rpc/<fn>` run on the real database under the role of
the request's JWT, exactly as PostgREST does per request (`set local role`, then
`request.jwt.claims`), and under the role's statement timeout (the role's own setting, else the
one of `authenticator`, as PostgREST applies them). No PostgREST server can be installed here;
this is the smallest honest stand-in so the Supabase transport is tested end to end over real
HTTP.
"""

from __future__ import annotations

import json
from typing import Any

import jwt
import psycopg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared.db.rpc import SIGNATURE_QUERY, UnknownFunctionError, build_call
from tests.support.tenancy import STATEMENT_TIMEOUT_QUERY

JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
API_ROLES = {"anon", "authenticated", "service_role"}


def make_jwt(role: str, **claims: Any) -> str:
    return jwt.encode({"role": role, **claims}, JWT_SECRET, algorithm="HS256")


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "details": None, "hint": None}, status)


def create_app(database_url: str) -> Starlette:
    async def rpc(request: Request) -> Response:  # noqa: PLR0911 — one return per PostgREST answer
        fn = request.path_params["fn"]
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        try:
            claims = jwt.decode(token, JWT_SECRET, algorithms=["HS256"])
        except jwt.PyJWTError:
            return _error(401, "PGRST301", "JWT invalid")
        role = claims.get("role")
        if role not in API_ROLES:
            return _error(401, "PGRST301", "JWT role is not an API role")
        args = await request.json()
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            try:
                async with conn.transaction():
                    cursor = await conn.execute(STATEMENT_TIMEOUT_QUERY, {"role": role})
                    (timeout,) = await cursor.fetchone() or ("0",)
                    await conn.execute(
                        "select set_config('statement_timeout', %s, true)", (timeout,)
                    )
                    await conn.execute(
                        psycopg.sql.SQL("set local role {}").format(psycopg.sql.Identifier(role))
                    )
                    await conn.execute(
                        "select set_config('request.jwt.claims', %s, true)", (json.dumps(claims),)
                    )
                    cursor = await conn.execute(SIGNATURE_QUERY, (fn,))
                    signature = dict(await cursor.fetchall())
                    if not signature and args:
                        return _error(404, "PGRST202", f"Could not find the function public.{fn}")
                    statement, params = build_call(fn, signature, args)
                    cursor = await conn.execute(statement, params)
                    row = await cursor.fetchone()
            except UnknownFunctionError as exc:
                return _error(404, "PGRST202", str(exc))
            except psycopg.errors.InsufficientPrivilege as exc:
                return _error(
                    401 if role == "anon" else 403, "42501", exc.diag.message_primary or ""
                )
            except psycopg.errors.QueryCanceled as exc:
                # PostgREST answers a statement timeout with 500 and SQLSTATE 57014
                return _error(500, "57014", exc.diag.message_primary or "")
            except psycopg.errors.UndefinedFunction as exc:
                return _error(404, "PGRST202", exc.diag.message_primary or "")
            except psycopg.Error as exc:
                return _error(400, exc.sqlstate or "P0001", exc.diag.message_primary or str(exc))
        return JSONResponse(None if row is None else row[0])

    return Starlette(routes=[Route("/rest/v1/rpc/{fn}", rpc, methods=["POST"])])
