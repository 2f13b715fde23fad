from django.urls import path

from cachedemo import views

urlpatterns = [
    path("", views.home, name="home"),
    path("slow/", views.slow_report, name="slow"),
    path("counter/", views.counter, name="counter"),
    path("cart/", views.cart, name="cart"),
    path("dashboard/", views.dashboard, name="dashboard"),
]
