"""s3chunkuploader as a one-file Django app: the peer of bench/stream.

`POST /upload` takes a multipart/form-data body; Django's multipart parser
hands each file's chunks to s3chunkuploader's S3FileUploadHandler, which
pipes them into an S3 multipart upload (5 MB parts, 10 threads), as its
README wires it (FILE_UPLOAD_HANDLERS, csrf check bypassed on the view).
The response lists `original_name`, `file_size` and the object key of each
file.

Configured from the environment: S3_ENDPOINT, S3_REGION, S3_BUCKET,
S3_ACCESS_KEY, S3_SECRET_KEY. Served by gunicorn:

    gunicorn --chdir bench/stream-peer app:application
"""

import os

from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-stream-peer",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    FILE_UPLOAD_HANDLERS=("s3chunkuploader.file_handler.S3FileUploadHandler",),
    AWS_ACCESS_KEY_ID=os.environ["S3_ACCESS_KEY"],
    AWS_SECRET_ACCESS_KEY=os.environ["S3_SECRET_KEY"],
    AWS_REGION=os.environ.get("S3_REGION", "garage"),
    AWS_S3_REGION_NAME=os.environ.get("S3_REGION", "garage"),
    AWS_S3_ENDPOINT_URL=os.environ["S3_ENDPOINT"],
    AWS_STORAGE_BUCKET_NAME=os.environ["S3_BUCKET"],
    AWS_DEFAULT_ACL=None,
    S3_DOCUMENT_ROOT_DIRECTORY="s3chunkuploader",
)

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402


@csrf_exempt
def upload(request):
    if request.method != "POST":
        return JsonResponse({"error": "POST a multipart/form-data body"}, status=405)
    files = [
        {"field": field, "original_name": f.original_name, "file_size": f.file_size, "key": f.name}
        for field, f in request.FILES.items()
    ]
    return JsonResponse({"files": files, "fields": dict(request.POST.items())}, status=201)


urlpatterns = [path("upload", upload)]
application = get_wsgi_application()
