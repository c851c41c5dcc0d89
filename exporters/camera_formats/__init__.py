"""Camera exporters: the solved camera (cameras.json's `Cameras`) in the formats other tools read.
Each module has a writer and a reader (the readers exist for round-trip tests and for re-import); all
writes are atomic. numpy + standard library, and usd-core (`pxr`) in `usd_camera` only, which is
therefore not imported here. Never torch, bpy or cv2.

| module        | format                                     | writer / reader                              |
|---------------|--------------------------------------------|----------------------------------------------|
| `colmap_text` | COLMAP text model (PINHOLE, cam_from_world) | write_colmap_text / read_colmap_text         |
| `nerfstudio`  | nerfstudio transforms.json (OpenGL camera)  | write_transforms / read_transforms           |
| `nuke_chan`   | Nuke .chan (Y-up world, ZXY degrees, vfov)  | write_chan / read_chan                       |
| `usd_camera`  | animated UsdGeom.Camera (Z up, mpu 1)       | write_usd_camera / read_usd_camera           |
| `table`       | per-frame JSON and CSV tables               | write_table_json, write_table_csv / read_... |
| `export`      | all of them: `export_cameras(cameras, out_dir, formats, points, fps)`     |

Each module's docstring states its conventions.
"""
from .export import FORMATS, ExportedCameras, export_cameras

__all__ = ["FORMATS", "ExportedCameras", "export_cameras"]
