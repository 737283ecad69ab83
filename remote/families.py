"""Every model family deployed on the app. Add a module here when a family's class exists."""
