"""`shotfield serve`: an HTTP server that takes footage, runs jobs and hands back job folders.

The server adds nothing to what a job is: each job runs as a child process of the same resumable
`shotfield run` command (or as Ray tasks that run it, one per stage), so a server crash never corrupts a
job and a restarted server simply runs the unfinished ones again. Its state is one folder:

    ROOT/
      token                 the access token (user-only permissions), made on first start
      address               the URL the running server listens on (written at start)
      uploads/<id>/         footage being received: upload.json + data.part, then the footage itself
      jobs/<id>/            server.json (footage name, settings, state, error), server.log (the child's
                            output), footage/ (the upload, moved here), job/ (the Shotfield job folder)

Ids are made by the server (`secrets.token_hex`); every name or path a client sends is checked in
`names.py` before it touches the filesystem. Modules: config (settings of the server), auth (token,
rate limit, body limit), names (ids, file names, paths inside a folder), errors (ApiError), uploads,
jobs (records and their store), jobspec (a job's settings as `shotfield run` options), pool (the
bounded worker pool), local_exec / ray_exec (how a job runs), child (`shotfield run` that stops when its
parent dies), archive (zip in, zip out), app (the HTTP routes), serve (start up), submit
(`shotfield submit`: shots straight to a Ray cluster). docs/farm.md is the user's guide.

FastAPI + uvicorn were chosen as DESIGN.md names them; the upload protocol is plain byte ranges on PUT
(no multipart), so python-multipart is not needed.
"""
API_VERSION = 1
