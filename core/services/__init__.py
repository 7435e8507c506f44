"""What the web page calls: plain functions and classes between the page and the ML library.

The shelf of shipped models and the answers of the predictor tabs (`shelf`, `answers`), training
runs and the checks of what a visitor asks for (`runs`, `training_requests`), the live dashboard
(`dashboard`), a visitor's own classes and their archives (`own_classes`, `archives`), a visitor's
own models (`visitor_models`), the server's settings (`settings`) and the page's texts (`texts`).

Nothing here imports Gradio, so tests call all of it directly; nothing in the ML library imports
this package (tests/test_layers.py).
"""
