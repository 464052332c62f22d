"""bp: the web page (plain HTML/JS served from api/static; no build step, no CDN)."""

from __future__ import annotations

from flask import Blueprint, request, send_from_directory

bp = Blueprint("web", __name__, static_folder="static", static_url_path="/static")


@bp.get("/")
def home():
    # the prototype's API answered a JSON index here; clients that ask for JSON still get one
    wants = request.accept_mimetypes.best_match(["text/html", "application/json"])
    if wants == "application/json":
        from api.predict import prototype_index

        response = prototype_index()
    else:
        response = send_from_directory(bp.static_folder, "index.html")
    response.vary.add("Accept")
    return response


@bp.get("/jobs/<job_id>")
def job_page(job_id: str):
    return send_from_directory(bp.static_folder, "index.html")


@bp.get("/favicon.ico")
def favicon():
    # browsers ask for /favicon.ico whatever the page links to: the same small SVG
    return send_from_directory(bp.static_folder, "favicon.svg", mimetype="image/svg+xml")
