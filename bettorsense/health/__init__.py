"""Health of the integration, for staff and monitors.

``snapshot`` gathers what the fleet recorded; ``rules`` turns a snapshot into a verdict, a pure
function; ``report`` renders it as JSON and text; ``probe`` is the live check behind "Check now".
"""
