"""The agent and supervisor panel: Flask + Flask-SocketIO inside the daemon
(:func:`ccd.web.server.start_panel`)."""
