"""Views of the sample app: a cached slow page, low-level cache calls, cached sessions, and a
cache dashboard for staff users."""

from __future__ import annotations

import time
from itertools import islice
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import user_passes_test
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import cache_page
from django.views.decorators.http import require_http_methods

from cachedemo.charts import log_regions_chart, ratio_bar

PRODUCTS = {"apple": "Apple", "pear": "Pear", "fig": "Fig"}


def home(request: HttpRequest) -> HttpResponse:
    # Low-level API: add() creates the counter once, incr() is atomic across threads/requests.
    cache.add("demo:visits", 0, timeout=None)
    visits = cache.incr("demo:visits")
    motd = cache.get_or_set("demo:motd", lambda: f"generated at {timezone.now():%H:%M:%S}", 60)
    return render(request, "cachedemo/home.html", {"visits": visits, "motd": motd})


@cache_page(30)  # type: ignore[untyped-decorator]
def slow_report(request: HttpRequest) -> HttpResponse:
    # Stands for an expensive page: the first request pays, the next 30 s come from the cache.
    time.sleep(getattr(settings, "SLOW_VIEW_SECONDS", 1.0))
    return render(
        request, "cachedemo/slow.html", {"generated": timezone.now().isoformat(), "n": 42}
    )


@require_http_methods(["GET", "POST"])  # type: ignore[untyped-decorator]
def counter(request: HttpRequest) -> HttpResponse:
    names = ["demo:clicks:red", "demo:clicks:blue"]
    if request.method == "POST":
        color = request.POST.get("color", "")
        key = f"demo:clicks:{color}"
        if key in names:
            cache.add(key, 0, timeout=None)
            cache.incr(key)
        return redirect("counter")
    counts = cache.get_many(names)
    return render(
        request,
        "cachedemo/counter.html",
        {"red": counts.get(names[0], 0), "blue": counts.get(names[1], 0)},
    )


@require_http_methods(["GET", "POST"])  # type: ignore[untyped-decorator]
def cart(request: HttpRequest) -> HttpResponse:
    # The session lives in the cache (SESSION_ENGINE = "...sessions.backends.cache").
    items: dict[str, int] = request.session.get("cart", {})
    if request.method == "POST":
        product = request.POST.get("product", "")
        if product in PRODUCTS:
            items[product] = items.get(product, 0) + 1
            request.session["cart"] = items
        return redirect("cart")
    lines = [(PRODUCTS[p], n) for p, n in sorted(items.items())]
    return render(request, "cachedemo/cart.html", {"lines": lines, "products": PRODUCTS})


def _is_staff(user: Any) -> bool:
    return bool(user.is_active and user.is_staff)


@user_passes_test(_is_staff)  # type: ignore[untyped-decorator]
def dashboard(request: HttpRequest) -> HttpResponse:
    stats = cache.stats()
    hits, misses = int(stats.get("hits", 0)), int(stats.get("misses", 0))
    keys = sorted(islice(cache.iter_keys("*"), 50))  # a sample: stops scanning after 50
    context = {
        "stats": stats,
        "hit_rate": None if stats.get("hit_rate") is None else 100 * stats["hit_rate"],
        "hits": hits,
        "misses": misses,
        "key_count": stats.get("keys", 0),
        "keys": keys,
        "memory_bytes": stats.get("memory_bytes", stats.get("used_memory", 0)),
        "disk_bytes": stats.get("disk_bytes", 0),
        "disk_reads": stats.get("disk_reads"),
        "read_cache": (stats.get("read_cache_hits"), stats.get("read_cache_misses")),
        "hit_chart": ratio_bar(hits, misses, "hits", "misses"),
        "log_chart": log_regions_chart(stats),
        "regions": [
            (name, stats.get(f"log_{name}_address"))
            for name in ("begin", "head", "read_only", "tail")
        ],
    }
    return render(request, "cachedemo/dashboard.html", context)
