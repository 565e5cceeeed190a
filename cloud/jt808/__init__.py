"""JT/T 808 (道路运输车辆卫星定位系统终端通讯协议) over TCP: codec, session rules and server."""
